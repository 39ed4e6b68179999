// HTTP response framing as the client sees it: the bytes a server sends go, in pieces of the
// size the first byte picks, through the same Beast parser set-up the client uses (limits from
// runner/http/parsers.h), for an API answer (AnswerParser, 1 MiB cap) and for a download
// (DownloadParser, its body streamed in 64 KiB chunks, capped). Whatever the framing
// (Content-Length lies, broken chunked encoding, megabytes of headers), parsing ends, bodies never
// pass their caps, and an API answer that parses goes on into the task decoder as it would.

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string_view>

#include "runner/api/codec.h"
#include "runner/fuzz/feed.h"
#include "runner/fuzz/fuzz_check.h"
#include "runner/http/parsers.h"

namespace nanobatch::fuzz {
namespace {

namespace net = boost::asio;

constexpr std::uint64_t kDownloadLimit = 256 << 10;

}  // namespace
}  // namespace nanobatch::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nanobatch;
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  {  // An API answer, as Client::Send reads it.
    http::AnswerParser parser;
    parser.eager(true);
    http::LimitResponse(parser, api::kApiBodyLimit);
    fuzz::Feed(parser, input, piece);
    FUZZ_CHECK(parser.body().size() <= api::kApiBodyLimit);  // done or not
    if (parser.is_done()) {
      api::DecodeTaskResponse(parser.status(), parser.body(), parser.retry_after().value_or(""));
    }
  }
  {  // A download, as Client::Download streams it.
    http::DownloadParser parser;
    parser.eager(true);
    http::LimitResponse(parser, fuzz::kDownloadLimit);
    char chunk[64 << 10];
    std::uint64_t delivered = 0;
    auto reset = [&] {
      delivered += sizeof chunk - parser.room_left();
      parser.SetRoom(chunk, sizeof chunk);
    };
    parser.SetRoom(chunk, sizeof chunk);
    fuzz::Feed(parser, input, piece, reset);
    delivered += sizeof chunk - parser.room_left();
    FUZZ_CHECK(delivered <= fuzz::kDownloadLimit);
  }
  return 0;
}
