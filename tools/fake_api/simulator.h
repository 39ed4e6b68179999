#pragma once
// Simulator: the API of ../shared/reference/api.md as a pure state machine, without I/O, so
// that its behaviour (credits, task lifecycle, limits, faults) is tested without a network and
// the HTTPS server (server.cc) stays a thin shell around it.
//
// Time is passed in by the caller: a test moves it by hand.
//
// Example:
//   Simulator sim(options);
//   Reply reply = sim.Submit("Bearer sk-test", body, now);   // 200 {"code":200,...,"taskId"}
//   reply = sim.Query("Bearer sk-test", task_id, now + 1s);

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nanobatch::fake_api {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string api_key = "sk-test";
  std::uint64_t credits = 1'000'000;  // starting balance
  std::map<std::string, std::uint32_t> prices = {{"1K", 16}, {"2K", 24}, {"4K", 36}};
  double rate = 0;  // server-side requests/s over /v1; 0: unlimited
  double burst = 10;
  double pending_ms = 50;       // time a task stays `pending`
  double processing_ms = 200;   // then `processing`
  double latency_jitter = 0.0;  // ±fraction applied to both, per task
  int images_per_task = 1;
  // A prompt containing this gets, on its first submission only, images that are not what was
  // asked: square, in the other format (empty: never).
  std::string mismatch_once;
  double image_scale = 1.0 / 32;  // 1K square -> 32x32 pixels
  int image_noise = 0;            // 0-255: noise that keeps images from compressing
  std::uint64_t spend_limit = 0;  // credits per spend window; 0: none
  double spend_window_s = 3600;
  bool deny_all_ips = false;     // every request gets 403 ip_not_allowed
  std::string reject_substring;  // prompts containing it get 400 invalid_request
  // Prompts containing it get 503 upstream_error at every submit (the upstream model refuses
  // sensitive content; nothing charged).
  std::string sensitive_substring;
  // Tasks whose prompt contains it are charged and run, but every poll of them is answered 500
  // (an API that cannot answer for one task).
  std::string broken_poll_substring;
  // Hosts and ports that go into image URLs.
  std::string api_authority = "127.0.0.1:0";  // host:port of the API listener
  std::string file_authority;                 // host:port of the file listener; empty: API's

  // Fault injection, each a probability in [0, 1].
  double p_submit_5xx = 0;
  double p_poll_5xx = 0;
  double p_task_fail = 0;
  double p_task_vanish = 0;  // a poll finds the task gone for good: 404 task_not_found
  double p_429 = 0;          // a spurious rate_limit_exceeded on any /v1 request (a storm)
  int retry_after_s = 1;     // Retry-After sent with injected 429s; 0: no header
  double p_plain_http_url = 0;
  double p_foreign_host_url = 0;
  double p_reset = 0;       // image download: connection reset mid-body
  double p_truncate = 0;    // image download: body shorter than Content-Length
  double p_slow = 0;        // image download: body comes in ten pieces over --slow-ms
  double p_trickle = 0;     // image download: body comes one byte a second
  double p_image_hang = 0;  // image download: the request is read, the answer never comes
  // Image downloads answered with this HTTP status instead (0: none; a 3xx names the image itself
  // in Location, a redirect no client should follow), the first image_status_times requests of
  // each image (0: every request).
  int image_status = 0;
  unsigned image_status_times = 0;
  // Hostile answers (each still a real task, created and charged as the API would have):
  double p_bad_submit_body = 0;          // a 200 submit answer whose body is unusable, ...
  std::string bad_submit_body = "html";  // ... of this kind: html no-task-id invalid-utf8
                                         // deep-json long-id crlf-id slash-id key-id
  double p_poll_garbage = 0;             // a poll answered 200 with an HTML page
  std::size_t drop_image_tail = 0;       // image bodies served this many bytes short of their end
  // Broken HTTP on /v1 answers (the request is handled, and charged, first), with this
  // probability, of this kind: hang trickle huge-headers huge-body length-long length-short
  // bad-chunked redirect no-keepalive reset stray-answer bare-status (a status line with no
  // reason phrase, nor the space before it), switching-protocols (a 101 nobody asked for, then
  // another protocol's bytes; also in place of images), gateway-timeout (a CDN's HTML 524 in
  // place of the answer), or interim (1xx answers first, which is allowed HTTP; also before
  // images) (the server shell sends them; see server.cc).
  double p_wire_fault = 0;
  std::size_t wire_fault_every = 0;  // or every Nth /v1 answer exactly (0: by probability)
  std::string wire_fault;
  // Webhooks: a task submitted with a callback_url is POSTed there this long after it ends ...
  double callback_delay_ms = 0;
  double p_callback_drop = 0;       // ... or never (a callback the API loses) ...
  double p_callback_duplicate = 0;  // ... or twice (a retry, a replay)
  std::uint64_t seed = 1;
};

// A callback due to be POSTed (by the server shell) to `url`, with the task's query body.
struct Callback {
  std::string url;
  std::string body;
};

struct Reply {
  int status = 200;
  std::string body;                // JSON
  std::optional<int> retry_after;  // seconds, for 429
};

// How the server should send one image.
enum class Delivery { kNormal, kReset, kTruncate, kSlow, kTrickle, kHang };

struct ImageReply {
  int status = 200;      // 404 when there is no such image, or Options::image_status
  std::string location;  // for a 3xx
  std::string content_type;
  std::string bytes;
  Delivery delivery = Delivery::kNormal;
};

class Simulator {
 public:
  explicit Simulator(Options options);

  Reply Submit(std::string_view authorization, std::string_view body, Clock::time_point now);
  Reply Query(std::string_view authorization, std::string_view task_id, Clock::time_point now);
  Reply Credits(std::string_view authorization, Clock::time_point now);
  // GET /images/<task>-<k>.<ext>; images are served without auth (api.md: public URLs).
  ImageReply Image(std::string_view path, Clock::time_point now);
  // The callbacks due by `now` (settling the tasks that ended by then), in order.
  std::vector<Callback> DueCallbacks(Clock::time_point now);
  // What came of a callback's POST: the receiver's HTTP status, or 0 for a network failure.
  void OnCallbackResult(int status);
  // GET /_stats: what the server saw, for tests; `detail` adds per-prompt and per-image maps.
  std::string Stats(Clock::time_point now, bool detail);
  // A TLS handshake completed on either listener; `resumed`: from a session the client kept;
  // `cipher`: the suite agreed on (counted per name in the stats).
  void OnHandshake(bool resumed, const std::string& cipher) {
    ++tls_handshakes_;
    if (resumed) ++tls_resumed_;
    ++tls_ciphers_[cipher];
  }

  // Read-only views for unit tests.
  std::int64_t balance() const { return balance_; }
  std::uint64_t submissions() const { return submissions_; }

 private:
  struct Task {
    std::string id;
    std::string prompt;
    std::string resolution;
    std::string aspect_ratio;
    std::string output_format;
    std::uint32_t credits = 0;
    Clock::time_point created;
    std::int64_t created_unix_ms = 0;
    Clock::time_point processing_at;
    Clock::time_point done_at;
    bool will_fail = false;
    bool settled = false;     // refund applied (failed) or spend final (completed)
    bool vanished = false;    // answered 404 task_not_found from then on
    bool mismatched = false;  // its images ignore the asked aspect ratio and format
    std::vector<std::string> urls;
    std::string callback_url;
  };

  // Checks shared by every /v1 request: auth, IP, rate limit, injected 429s.
  std::optional<Reply> Admit(std::string_view authorization, Clock::time_point now);
  void Settle(Clock::time_point now);
  bool Chance(double probability);
  std::string NewTaskId();

 public:
  // Whether this /v1 answer goes out broken (options.wire_fault), counted in stats.
  bool DrawWireFault();
  const Options& options() const { return options_; }

 private:
  std::string TaskJson(const Task& task, Clock::time_point now) const;
  std::string BadSubmitBody(const std::string& id) const;
  static Reply Error(int status, std::string_view code, std::string_view type,
                     std::string_view message);

  Options options_;
  std::mt19937_64 random_;
  std::unordered_map<std::string, Task> tasks_;
  // Tasks not yet settled, soonest end first, so settling costs O(log n) per finished task.
  std::priority_queue<std::pair<Clock::time_point, std::string>,
                      std::vector<std::pair<Clock::time_point, std::string>>, std::greater<>>
      unsettled_;
  // Callbacks not yet due, soonest first: (due, task id).
  std::priority_queue<std::pair<Clock::time_point, std::string>,
                      std::vector<std::pair<Clock::time_point, std::string>>, std::greater<>>
      callbacks_due_;
  std::int64_t balance_;
  // Token bucket of the server-side rate limit.
  double tokens_;
  Clock::time_point last_refill_;
  // Spend window.
  Clock::time_point spend_window_start_;
  std::uint64_t spent_in_window_ = 0;
  // Every /v1 request time within the last second, for the busiest 1-second window seen.
  std::deque<Clock::time_point> recent_requests_;

  // Counters for /_stats.
  std::uint64_t requests_ = 0;
  std::uint64_t submissions_ = 0;
  std::uint64_t queries_ = 0;
  std::uint64_t credit_queries_ = 0;
  std::uint64_t images_served_ = 0;
  std::uint64_t rate_limited_ = 0;
  std::uint64_t spend_limited_ = 0;
  std::uint64_t injected_429_ = 0;
  std::uint64_t injected_5xx_ = 0;
  std::uint64_t tasks_completed_ = 0;
  std::uint64_t tasks_failed_ = 0;
  std::uint64_t credits_charged_ = 0;
  std::uint64_t credits_refunded_ = 0;
  std::uint64_t image_statuses_sent_ = 0;
  std::map<std::string, unsigned> image_status_counts_;  // by path: Options::image_status sent
  std::uint64_t image_faults_ = 0;
  std::uint64_t bad_submit_bodies_ = 0;
  std::uint64_t wire_faults_ = 0;
  std::uint64_t wire_fault_draws_ = 0;
  std::uint64_t refused_402_ = 0;
  std::uint64_t injected_garbage_ = 0;
  std::uint64_t callbacks_sent_ = 0;
  std::uint64_t callbacks_dropped_ = 0;
  std::uint64_t callbacks_accepted_ = 0;  // answered 2xx
  std::uint64_t callbacks_refused_ = 0;   // answered otherwise
  std::uint64_t callbacks_failed_ = 0;    // no answer
  std::size_t max_requests_in_1s_ = 0;
  std::optional<Clock::time_point> first_request_;  // of /v1: the span of the request rate
  Clock::time_point last_request_;
  std::uint64_t tls_handshakes_ = 0;
  std::uint64_t tls_resumed_ = 0;
  std::map<std::string, std::uint64_t> tls_ciphers_;
  std::map<std::string, std::uint64_t> submissions_by_prompt_;
  std::map<std::string, std::string> image_sha256_;  // path -> sha256 of the bytes served
};

}  // namespace nanobatch::fake_api
