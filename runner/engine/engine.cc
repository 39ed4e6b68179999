#include "runner/engine/engine.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "runner/engine/job.h"
#include "runner/engine/service.h"
#include "runner/util/log.h"
#include "runner/util/service_notify.h"

namespace nanobatch::engine {
namespace {

namespace net = boost::asio;

// SIGINT and SIGTERM halt, and a second one ends the grace of what is still in flight; SIGHUP
// is logged and ignored (a terminal that closes must not kill an overnight run).
void WatchSignals(Service& service, net::signal_set& signals) {
  signals.async_wait([&service, &signals](boost::system::error_code error, int signal) {
    if (error) return;  // cancelled at the end of the run
    if (signal == SIGHUP) {
      util::LogInfo("SIGHUP received: ignored by run (it goes on; SIGTERM or SIGINT stop it)");
    } else if (service.halted()) {
      service.EndGrace(signal == SIGINT ? "SIGINT" : "SIGTERM");
    } else {
      service.Halt(StopReason::kSignal, signal == SIGINT ? "SIGINT" : "SIGTERM");
    }
    WatchSignals(service, signals);
  });
}

// The process around `run`'s one Job: the webhook receiver, signals, systemd, the balance query.
net::awaitable<int> RunHosted(Service& service, Job& job) {
  TaskGroup background(service.executor());
  std::string error;
  if (!service.StartReceiver(background, error)) {
    util::LogError(error);
    co_return 5;
  }
  net::signal_set signals(service.executor(), SIGINT, SIGTERM, SIGHUP);
  WatchSignals(service, signals);
  util::AsyncEvent heartbeat_stop(service.executor());
  // systemd hears from the loop itself: STATUS= with the progress line, WATCHDOG=1.
  background.Spawn(util::ReportToService([&job] { return job.ProgressLine(); }, heartbeat_stop));
  co_await service.LogBalance();  // a certificate or credential problem stops here, unpaid
  util::NotifyService("READY=1\nSTATUS=" + job.ProgressLine());
  const int exit_code = co_await job.Run();
  util::NotifyService("STOPPING=1");
  heartbeat_stop.Notify();
  service.StopReceiver();
  co_await background.Join();
  signals.cancel();
  service.ReleaseLoop();
  co_return exit_code;
}

}  // namespace

int RunEngine(const config::Config& config, const std::string& api_key,
              const manifest::ItemStore& store, JobPlan plan, journal::Journal& journal,
              JobFlags flags) {
  // `run`: one event loop, one Service on it, one Job (serve hosts many Jobs on one Service).
  boost::asio::io_context io(1);
  Service service(io.get_executor(), config, api_key);
  Job job(service, store, std::move(plan), journal, std::move(flags));
  int exit_code = 3;
  boost::asio::co_spawn(io, RunHosted(service, job), [&](std::exception_ptr failure, int code) {
    if (failure) std::rethrow_exception(failure);  // a bug: main reports it (exit 70)
    exit_code = code;
  });
  io.run();
  return exit_code;
}

}  // namespace nanobatch::engine
