// The webhook receiver: a request's bytes go, in pieces, through the server's own parser
// set-up (runner/http/parsers.h: 16 KiB of headers, 64 KiB of body), and a request that parses
// is routed as `run` routes it (RouteCallback) to a task watcher that awaits a callback for one
// token bound to task-1 and one not bound yet. Whatever arrives: no crash, an answer from the
// documented set, and a callback can only settle the task its token belongs to.

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <memory>
#include <string_view>

#include "runner/engine/idle_watcher.h"
#include "runner/engine/task_watcher.h"
#include "runner/fuzz/feed.h"
#include "runner/fuzz/fuzz_check.h"
#include "runner/http/parsers.h"

namespace nanobatch::fuzz {
namespace {

namespace bhttp = boost::beast::http;
namespace net = boost::asio;

// The bound token and the unbound one the seeds use.
constexpr std::string_view kBound = "0123456789abcdef0123456789abcdef";
constexpr std::string_view kUnbound = "fedcba9876543210fedcba9876543210";

// One watcher for the whole run (as in `run`), its polls aimed an hour away at nobody.
using Receiver = engine::IdleWatcher;

// A fresh receiver per input would be slow; the tokens are re-armed instead.
Receiver& TheReceiver() {
  static Receiver* receiver = new Receiver;
  // Each input starts from the same state: the last one may have bound or settled a token.
  receiver->watcher.Forget(std::string(kBound));
  receiver->watcher.Forget(std::string(kUnbound));
  receiver->watcher.Expect(std::string(kBound));
  receiver->watcher.Bind(std::string(kBound), "task-1");
  receiver->watcher.Expect(std::string(kUnbound));
  return *receiver;
}

}  // namespace
}  // namespace nanobatch::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  namespace bhttp = boost::beast::http;
  namespace net = boost::asio;
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  bhttp::request_parser<bhttp::string_body> parser;
  parser.eager(true);
  http::LimitRequest(parser, std::uint64_t{64} << 10);
  fuzz::Feed(parser, input, piece);
  if (!parser.is_done()) return 0;  // the server closes such a connection without an answer
  const auto& request = parser.get();
  FUZZ_CHECK(request.body().size() <= std::size_t{64} << 10);
  http::IncomingRequest incoming;
  incoming.method = std::string(request.method_string());
  incoming.target = std::string(request.target());
  incoming.body = request.body();
  fuzz::Receiver& receiver = fuzz::TheReceiver();
  const auto before = receiver.watcher.stats();
  const http::Reply reply = engine::RouteCallback(receiver.watcher, incoming);
  FUZZ_CHECK(reply.status == 200 || reply.status == 400 || reply.status == 404 ||
             reply.status == 405 || reply.status == 409);
  // The bound token's task is task-1: a callback naming any other task is refused.
  const auto after = receiver.watcher.stats();
  if (reply.status == 409) FUZZ_CHECK(after.callbacks_refused == before.callbacks_refused + 1);
  return 0;
}
