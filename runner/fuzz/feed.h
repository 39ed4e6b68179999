#pragma once
// Feeding bytes to a Beast parser the way reads from a socket would: in pieces, the unparsed
// rest kept and more appended when the parser needs more, EOF at the end (a closed socket).

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <string_view>

namespace nanobatch::fuzz {

// Feeds `input` to `parser` `piece` bytes at a time, as reads from a socket would; `on_body`
// (for a buffer body) empties the body buffer when it is full. Ends at EOF like a closed socket.
template <typename Parser, typename OnBody>
void Feed(Parser& parser, std::string_view input, std::size_t piece, OnBody on_body) {
  std::size_t offset = 0;
  std::size_t window = piece;
  for (int steps = 0; steps < 1'000'000 && !parser.is_done(); ++steps) {
    const std::size_t available = std::min(window, input.size() - offset);
    boost::system::error_code error;
    const std::size_t used =
        parser.put(boost::asio::buffer(input.data() + offset, available), error);
    offset += used;
    if (error == boost::beast::http::error::need_buffer) {
      on_body();
      continue;
    }
    if (error == boost::beast::http::error::need_more) {
      if (available == input.size() - offset) {  // all of the input was offered
        parser.put_eof(error);                   // the server closed the connection
        return;
      }
      window += piece;  // the same bytes and more, as a socket read appends to the buffer
      continue;
    }
    if (error) return;  // a framing error: the client reports it and drops the connection
    window = piece;
    if (used == 0 && available == 0) {
      parser.put_eof(error);
      return;
    }
  }
}

template <typename Parser>
void Feed(Parser& parser, std::string_view input, std::size_t piece) {
  Feed(parser, input, piece, [] {});
}

}  // namespace nanobatch::fuzz
