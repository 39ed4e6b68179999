#include "runner/engine/engine.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "runner/engine/job.h"
#include "runner/engine/service.h"

namespace nanobatch::engine {

int RunEngine(const config::Config& config, const std::string& api_key,
              const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
              JobFlags flags) {
  // `run`: one event loop, one Service on it, one Job (serve will host many Jobs on one
  // Service).
  boost::asio::io_context io(1);
  Service service(io.get_executor(), config, api_key);
  Job job(service, store, std::move(plan), journal, flags);
  int exit_code = 3;
  boost::asio::co_spawn(io, job.Run(), [&](std::exception_ptr failure, int code) {
    if (failure) std::rethrow_exception(failure);  // a bug: main reports it (exit 70)
    exit_code = code;
  });
  io.run();
  return exit_code;
}

}  // namespace nanobatch::engine
