#include "tools/fake_api/simulator.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>

#include "runner/api/spec.h"
#include "runner/manifest/item.h"
#include "runner/util/sha256.h"
#include "tools/fake_api/image_gen.h"

namespace nanobatch::fake_api {
namespace json = boost::json;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Clock::duration FromMs(double ms) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

// Milliseconds, so that created_at and completed_at are each rounded down from the true instants
// as a real API's are (their difference is then an unbiased duration, not always the floor).
std::int64_t UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// FNV-1a, for a stable per-image seed.
std::uint64_t Fnv1a(std::string_view text) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

const json::string* StringAt(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value == nullptr ? nullptr : value->if_string();
}

}  // namespace

Simulator::Simulator(Options options)
    : options_(std::move(options)),
      random_(options_.seed),
      balance_(static_cast<std::int64_t>(options_.credits)),
      tokens_(options_.burst),
      last_refill_(Clock::now()),
      spend_window_start_(Clock::now()) {}

bool Simulator::Chance(double probability) {
  return probability > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < probability;
}

bool Simulator::DrawWireFault() {
  if (options_.wire_fault.empty()) return false;
  ++wire_fault_draws_;
  const bool broken = options_.wire_fault_every > 0
                          ? wire_fault_draws_ % options_.wire_fault_every == 0
                          : Chance(options_.p_wire_fault);
  if (!broken) return false;
  ++wire_faults_;
  return true;
}

std::string Simulator::NewTaskId() {
  // A v4-looking UUID, like the API's ("397ce9f2-...").
  std::uniform_int_distribution<std::uint32_t> digit(0, 15);
  std::string id;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) id += '-';
    id += "0123456789abcdef"[digit(random_)];
  }
  return id;
}

Reply Simulator::Error(int status, std::string_view code, std::string_view type,
                       std::string_view message) {
  json::object error{{"code", code}, {"message", message}, {"type", type}};
  return Reply{status, json::serialize(json::object{{"error", std::move(error)}}), std::nullopt};
}

std::optional<Reply> Simulator::Admit(std::string_view authorization, Clock::time_point now) {
  ++requests_;
  recent_requests_.push_back(now);
  while (!recent_requests_.empty() && now - recent_requests_.front() >= std::chrono::seconds(1)) {
    recent_requests_.pop_front();
  }
  max_requests_in_1s_ = std::max(max_requests_in_1s_, recent_requests_.size());
  if (!first_request_) first_request_ = now;
  last_request_ = now;
  Settle(now);

  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer ||
      authorization.substr(kBearer.size()) != options_.api_key ||
      options_.api_key.rfind("sk-", 0) != 0) {
    return Error(401, "invalid_api_key", "authentication_error", "Invalid API key provided");
  }
  if (options_.deny_all_ips) {
    return Error(403, "ip_not_allowed", "permission_error",
                 "Your IP address is not allowed to use this API key");
  }
  if (options_.rate > 0) {
    tokens_ = std::min(options_.burst, tokens_ + Seconds(now - last_refill_) * options_.rate);
    last_refill_ = now;
    if (tokens_ < 1) {
      ++rate_limited_;
      Reply reply = Error(429, "rate_limit_exceeded", "rate_limit_error",
                          "Too many requests, please slow down");
      reply.retry_after = std::max(1, static_cast<int>(std::ceil((1 - tokens_) / options_.rate)));
      return reply;
    }
    tokens_ -= 1;
  }
  if (Chance(options_.p_429)) {
    ++injected_429_;
    Reply reply = Error(429, "rate_limit_exceeded", "rate_limit_error",
                        "Too many requests, please slow down");
    if (options_.retry_after_s > 0) reply.retry_after = options_.retry_after_s;
    return reply;
  }
  return std::nullopt;
}

void Simulator::Settle(Clock::time_point now) {
  // Lazily, but before anything that reads the balance: a task that ended `failed` gets its
  // pre-deducted credits back (api.md "Pricing").
  while (!unsettled_.empty() && unsettled_.top().first <= now) {
    Task& task = tasks_.at(unsettled_.top().second);
    unsettled_.pop();
    task.settled = true;
    if (!task.callback_url.empty()) {
      const auto delay = FromMs(options_.callback_delay_ms);
      if (Chance(options_.p_callback_drop)) {
        ++callbacks_dropped_;
      } else {
        callbacks_due_.emplace(task.done_at + delay, task.id);
        if (Chance(options_.p_callback_duplicate)) {
          callbacks_due_.emplace(task.done_at + delay + std::chrono::milliseconds(20), task.id);
        }
      }
    }
    if (task.will_fail) {
      balance_ += task.credits;
      credits_refunded_ += task.credits;
      ++tasks_failed_;
    } else {
      ++tasks_completed_;
    }
  }
}

Reply Simulator::Submit(std::string_view authorization, std::string_view body,
                        Clock::time_point now) {
  if (auto refused = Admit(authorization, now)) return *refused;

  json::error_code parse_error;
  json::value parsed = json::parse(body, parse_error);
  if (parse_error || !parsed.is_object()) {
    return Error(400, "invalid_request", "invalid_request_error", "Body must be a JSON object");
  }
  const json::object& request = parsed.as_object();
  const json::string* model = StringAt(request, "model");
  if (model == nullptr) {
    return Error(400, "invalid_request", "invalid_request_error", "model is required");
  }
  if (*model != api::kModel) {
    return Error(404, "model_not_found", "invalid_request_error",
                 "The model does not exist or is disabled");
  }
  const json::value* input_value = request.if_contains("input");
  if (input_value == nullptr || !input_value->is_object()) {
    return Error(400, "invalid_request", "invalid_request_error", "input is required");
  }
  const json::object& input = input_value->as_object();
  const json::string* prompt = StringAt(input, "prompt");
  if (prompt == nullptr || manifest::CheckPrompt(*prompt)) {
    return Error(400, "invalid_request", "invalid_request_error",
                 "input.prompt must be 1 to 20000 characters");
  }
  if (!options_.reject_substring.empty() &&
      std::string_view(*prompt).find(options_.reject_substring) != std::string_view::npos) {
    return Error(400, "invalid_request", "invalid_request_error",
                 "input.prompt was rejected by the content filter");
  }
  if (!options_.sensitive_substring.empty() &&
      std::string_view(*prompt).find(options_.sensitive_substring) != std::string_view::npos) {
    return Error(503, "upstream_error", "upstream_error",
                 "Image generation failed: the prompt was flagged as sensitive");
  }
  auto optional_string = [&](std::string_view key, std::string_view fallback,
                             auto check) -> std::optional<std::string> {
    const json::value* value = input.if_contains(key);
    if (value == nullptr) return std::string(fallback);
    if (!value->is_string() || check(value->as_string())) return std::nullopt;
    return std::string(value->as_string());
  };
  auto resolution =
      optional_string("resolution", api::kDefaultResolution, manifest::CheckResolution);
  auto aspect_ratio =
      optional_string("aspect_ratio", api::kDefaultAspectRatio, manifest::CheckAspectRatio);
  auto output_format =
      optional_string("output_format", api::kDefaultOutputFormat, manifest::CheckOutputFormat);
  if (!resolution || !aspect_ratio || !output_format) {
    return Error(400, "invalid_request", "invalid_request_error",
                 "resolution, aspect_ratio or output_format is invalid");
  }
  if (const json::value* urls = input.if_contains("image_urls")) {
    if (!urls->is_array() || urls->as_array().size() > api::kMaxImageUrls) {
      return Error(400, "invalid_request", "invalid_request_error",
                   "image_urls must be an array of at most 14 URLs");
    }
    for (const json::value& url : urls->as_array()) {
      if (!url.is_string() || manifest::CheckImageUrl(url.as_string())) {
        return Error(400, "invalid_request", "invalid_request_error", "image_urls has a bad URL");
      }
    }
  }
  if (const json::value* callback = request.if_contains("callback_url");
      callback != nullptr && !callback->is_string()) {
    return Error(400, "invalid_request", "invalid_request_error", "callback_url must be a string");
  }

  const json::value* callback = request.if_contains("callback_url");
  const std::string callback_url = callback ? std::string(callback->as_string()) : "";

  const std::uint32_t price = options_.prices.at(*resolution);
  if (options_.spend_limit > 0) {
    if (now - spend_window_start_ >= FromMs(options_.spend_window_s * 1000)) {
      spend_window_start_ = now;
      spent_in_window_ = 0;
    }
    if (spent_in_window_ + price > options_.spend_limit) {
      ++spend_limited_;
      Reply reply = Error(429, "spend_limit_exceeded", "billing_error",
                          "The spend limit of this API key has been reached");
      reply.retry_after =
          std::max(1, static_cast<int>(
                          std::ceil(options_.spend_window_s - Seconds(now - spend_window_start_))));
      return reply;
    }
  }
  if (balance_ < static_cast<std::int64_t>(price)) {
    ++refused_402_;
    return Error(402, "insufficient_credits", "billing_error",
                 "Insufficient credits; check your balance at GET /v1/credits");
  }
  if (Chance(options_.p_submit_5xx)) {
    ++injected_5xx_;
    return Chance(0.5) ? Error(500, "internal_error", "api_error", "Internal server error")
                       : Error(503, "upstream_error", "upstream_error",
                               "The upstream model is unavailable");
  }

  // Accepted: credits are pre-deducted now (api.md "Pricing").
  Task task;
  task.id = NewTaskId();
  task.prompt = std::string(*prompt);
  task.callback_url = callback_url;
  task.resolution = *resolution;
  task.aspect_ratio = *aspect_ratio;
  task.output_format = *output_format;
  task.credits = price;
  task.created = now;
  task.created_unix_ms = UnixNowMs();
  const double jitter = options_.latency_jitter > 0
                            ? std::uniform_real_distribution<double>(
                                  1 - options_.latency_jitter, 1 + options_.latency_jitter)(random_)
                            : 1.0;
  task.processing_at = now + FromMs(options_.pending_ms * jitter);
  task.done_at = task.processing_at + FromMs(options_.processing_ms * jitter);
  task.will_fail = Chance(options_.p_task_fail);
  task.mismatched = !options_.mismatch_once.empty() &&
                    task.prompt.find(options_.mismatch_once) != std::string::npos &&
                    submissions_by_prompt_[task.prompt] == 0;
  const std::string& authority =
      options_.file_authority.empty() ? options_.api_authority : options_.file_authority;
  for (int k = 0; k < options_.images_per_task; ++k) {
    std::string path = "/images/" + task.id + "-" + std::to_string(k) + "." + task.output_format;
    if (Chance(options_.p_plain_http_url)) {
      task.urls.push_back("http://" + authority + path);
    } else if (Chance(options_.p_foreign_host_url)) {
      task.urls.push_back("https://foreign.invalid" + path);
    } else {
      task.urls.push_back("https://" + authority + path);
    }
  }
  balance_ -= price;
  credits_charged_ += price;
  spent_in_window_ += price;
  ++submissions_;
  ++submissions_by_prompt_[task.prompt];
  const std::string id = task.id;
  unsettled_.emplace(task.done_at, id);
  tasks_.emplace(id, std::move(task));
  if (Chance(options_.p_bad_submit_body)) {
    ++bad_submit_bodies_;
    return Reply{200, BadSubmitBody(id), std::nullopt};
  }
  return Reply{200,
               json::serialize(json::object{
                   {"code", 200}, {"msg", "success"}, {"data", json::object{{"taskId", id}}}}),
               std::nullopt};
}

std::string Simulator::BadSubmitBody(const std::string& id) const {
  const std::string& kind = options_.bad_submit_body;
  auto with_id = [](const std::string& task_id) {
    return json::serialize(json::object{
        {"code", 200}, {"msg", "success"}, {"data", json::object{{"taskId", task_id}}}});
  };
  if (kind == "no-task-id") return R"({"code":200,"msg":"success","data":{}})";
  if (kind == "invalid-utf8") return "{\"code\":200,\"data\":{\"taskId\":\"\xff\xfe" + id + "\"}}";
  if (kind == "deep-json") return std::string(10000, '[') + std::string(10000, ']');
  if (kind == "long-id") return with_id(id + std::string(10000, 'a'));
  if (kind == "crlf-id") return with_id(id + "\r\nGET /v1/credits HTTP/1.1\r\nX: y");
  if (kind == "slash-id") return with_id("../../" + id);
  if (kind == "key-id") return with_id(options_.api_key);  // the caller's key echoed as the id
  return "<html><body>200 OK</body></html>";
}

std::string Simulator::TaskJson(const Task& task, Clock::time_point now) const {
  json::object out{
      {"id", task.id}, {"model", api::kModel}, {"created_at", task.created_unix_ms / 1000}};
  if (now < task.processing_at) {
    out["status"] = "pending";
  } else if (now < task.done_at) {
    out["status"] = "processing";
  } else if (task.will_fail) {
    out["status"] = "failed";
    out["error"] = json::object{{"code", "upstream_error"}, {"message", "Image generation failed"}};
  } else {
    out["status"] = "completed";
    const auto cost_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(task.done_at - task.created);
    out["completed_at"] = (task.created_unix_ms + cost_ms.count()) / 1000;
    json::array urls;
    for (const std::string& url : task.urls) urls.emplace_back(url);
    out["output"] = json::object{
        {"urls", std::move(urls)},
        {"metadata", json::object{{"model", api::kModel}, {"costTime", cost_ms.count() / 1000}}}};
  }
  return json::serialize(out);
}

Reply Simulator::Query(std::string_view authorization, std::string_view task_id,
                       Clock::time_point now) {
  if (auto refused = Admit(authorization, now)) return *refused;
  ++queries_;
  if (Chance(options_.p_poll_5xx)) {
    ++injected_5xx_;
    return Error(500, "internal_error", "api_error", "Internal server error");
  }
  if (Chance(options_.p_poll_garbage)) {
    ++injected_garbage_;
    return Reply{200, "<html><body>Service temporarily unavailable</body></html>", std::nullopt};
  }
  auto it = tasks_.find(std::string(task_id));
  if (it != tasks_.end() && !options_.broken_poll_substring.empty() &&
      it->second.prompt.find(options_.broken_poll_substring) != std::string::npos) {
    return Error(500, "internal_error", "api_error", "Internal server error");
  }
  if (it != tasks_.end() && !it->second.vanished && Chance(options_.p_task_vanish)) {
    it->second.vanished = true;  // its credits stay charged: nobody refunds a lost task
  }
  if (it == tasks_.end() || it->second.vanished) {
    return Error(404, "task_not_found", "invalid_request_error", "No such task");
  }
  return Reply{200, TaskJson(it->second, now), std::nullopt};
}

Reply Simulator::Credits(std::string_view authorization, Clock::time_point now) {
  if (auto refused = Admit(authorization, now)) return *refused;
  ++credit_queries_;
  // The real response shape is undocumented (api.md); this is one plausible shape.
  return Reply{
      200,
      json::serialize(json::object{
          {"code", 200}, {"msg", "success"}, {"data", json::object{{"credits", balance_}}}}),
      std::nullopt};
}

ImageReply Simulator::Image(std::string_view path, Clock::time_point now) {
  Settle(now);
  constexpr std::string_view kPrefix = "/images/";
  ImageReply reply;
  reply.status = 404;
  if (path.substr(0, kPrefix.size()) != kPrefix) return reply;
  const std::string_view name = path.substr(kPrefix.size());
  const auto dash = name.rfind('-');
  const auto dot = name.rfind('.');
  if (dash == std::string_view::npos || dot == std::string_view::npos || dot < dash) return reply;
  auto it = tasks_.find(std::string(name.substr(0, dash)));
  if (it == tasks_.end() || it->second.will_fail || now < it->second.done_at) return reply;
  const Task& task = it->second;
  const int k = std::atoi(std::string(name.substr(dash + 1, dot - dash - 1)).c_str());
  if (k < 0 || k >= static_cast<int>(task.urls.size()) ||
      name.substr(dot + 1) != task.output_format) {
    return reply;
  }
  if (options_.image_status != 0) {
    unsigned& sent = image_status_counts_[std::string(path)];
    if (options_.image_status_times == 0 || sent < options_.image_status_times) {
      ++sent;
      ++image_statuses_sent_;
      reply.status = options_.image_status;
      if (reply.status >= 300 && reply.status < 400) reply.location = std::string(path);
      return reply;
    }
  }
  const ImageSize size =
      SizeFor(task.resolution, task.mismatched ? "1:1" : task.aspect_ratio, options_.image_scale);
  const std::uint64_t seed = Fnv1a(name);
  reply.status = 200;
  if ((task.output_format == "png") != task.mismatched) {
    reply.content_type = "image/png";
    reply.bytes = MakePng(size, seed, options_.image_noise);
  } else {
    reply.content_type = "image/jpeg";
    reply.bytes = MakeJpeg(size, seed, options_.image_noise);
  }
  if (options_.drop_image_tail > 0) {
    reply.bytes.resize(reply.bytes.size() -
                       std::min(options_.drop_image_tail, reply.bytes.size() / 2));
  }
  image_sha256_[std::string(path)] = util::Sha256::HexOf(reply.bytes);
  ++images_served_;
  if (Chance(options_.p_reset)) {
    reply.delivery = Delivery::kReset;
  } else if (Chance(options_.p_truncate)) {
    reply.delivery = Delivery::kTruncate;
  } else if (Chance(options_.p_slow)) {
    reply.delivery = Delivery::kSlow;
  } else if (Chance(options_.p_trickle)) {
    reply.delivery = Delivery::kTrickle;
  } else if (Chance(options_.p_image_hang)) {
    reply.delivery = Delivery::kHang;
  }
  if (reply.delivery != Delivery::kNormal) ++image_faults_;
  return reply;
}

std::vector<Callback> Simulator::DueCallbacks(Clock::time_point now) {
  Settle(now);
  std::vector<Callback> due;
  while (!callbacks_due_.empty() && callbacks_due_.top().first <= now) {
    const Task& task = tasks_.at(callbacks_due_.top().second);
    callbacks_due_.pop();
    ++callbacks_sent_;
    due.push_back(Callback{task.callback_url, TaskJson(task, now)});
  }
  return due;
}

void Simulator::OnCallbackResult(int status) {
  if (status == 0) {
    ++callbacks_failed_;
  } else if (status >= 200 && status < 300) {
    ++callbacks_accepted_;
  } else {
    ++callbacks_refused_;
  }
}

std::string Simulator::Stats(Clock::time_point now, bool detail) {
  Settle(now);
  std::uint64_t duplicates = 0;
  std::uint64_t max_per_prompt = 0;
  for (const auto& [prompt, count] : submissions_by_prompt_) {
    duplicates += count - 1;
    max_per_prompt = std::max(max_per_prompt, count);
  }
  const std::uint64_t in_flight = unsettled_.size();
  json::object ciphers;
  for (const auto& [name, count] : tls_ciphers_) ciphers[name] = count;
  json::object out{
      {"requests", requests_},
      {"submissions", submissions_},
      {"queries", queries_},
      {"credit_queries", credit_queries_},
      {"images_served", images_served_},
      {"image_faults", image_faults_},
      {"image_statuses_sent", image_statuses_sent_},
      {"rate_limited_429", rate_limited_},
      {"injected_429", injected_429_},
      {"spend_limited_429", spend_limited_},
      {"injected_5xx", injected_5xx_},
      {"tasks_completed", tasks_completed_},
      {"tasks_failed", tasks_failed_},
      {"tasks_in_flight", in_flight},
      {"credits_charged", credits_charged_},
      {"credits_refunded", credits_refunded_},
      {"credits_net", credits_charged_ - credits_refunded_},
      {"balance", balance_},
      {"distinct_prompts", submissions_by_prompt_.size()},
      {"duplicate_prompt_submissions", duplicates},
      {"max_submissions_per_prompt", max_per_prompt},
      {"max_requests_in_1s", max_requests_in_1s_},
      {"request_span_s",
       first_request_ ? std::chrono::duration<double>(last_request_ - *first_request_).count()
                      : 0.0},
      {"tls_handshakes", tls_handshakes_},
      {"tls_resumed", tls_resumed_},
      {"tls_ciphers", ciphers},
      {"bad_submit_bodies", bad_submit_bodies_},
      {"wire_faults", wire_faults_},
      {"callbacks_sent", callbacks_sent_},
      {"callbacks_dropped", callbacks_dropped_},
      {"callbacks_accepted", callbacks_accepted_},
      {"callbacks_refused", callbacks_refused_},
      {"callbacks_failed", callbacks_failed_},
      {"insufficient_credits_402", refused_402_},
      {"injected_garbage", injected_garbage_},
  };
  if (detail) {
    json::object by_prompt;
    for (const auto& [prompt, count] : submissions_by_prompt_) by_prompt[prompt] = count;
    out["submissions_by_prompt"] = std::move(by_prompt);
    json::object hashes;
    for (const auto& [path, hash] : image_sha256_) hashes[path] = hash;
    out["image_sha256"] = std::move(hashes);
  }
  return json::serialize(out);
}

}  // namespace nanobatch::fake_api
