#pragma once
// SubmitGate: while submit answers are being lost, one submit at a time. A lost answer (none came
// in time, or one naming no task) may hide a task the API created and charged, whose id can
// never be known; the item is submitted again and the first payment is lost. At an API that
// takes submits but does not answer them in time (overloaded, at 3 a.m.), every submit in flight
// met that, again and again: against a simulator that charges and never answers, 200 items paid
// for 121 tasks over 148 s, none known. Now the first lost answer narrows the gate to one submit
// at a time (the probe); an answer of any kind (a task id, or an API error: the API speaks) opens
// it to all again. Probes lost one after another are counted, for the caller to stop at.
//
// The gate starts narrow, as TCP starts slow: a run's first submit goes alone, and the rest once
// the API has answered it. A base URL that is not the API (a proxy's 200 page) or an API that
// answers nothing is met by one submit, not by as many as there are connections (32 in the
// measurement above, every one paid). It costs the other submits one answer's wait, once: 121
// tasks paid became 6. A callback that names a submit's task counts as its answer.
//
// Example:
//   SubmitGate::Pass pass(gate);
//   if (!co_await gate.Enter(pass, &stop)) ...;   // stopped while waiting to probe
//   ... send ...
//   gate.Answered();                             // or: if (gate.Lost(pass) >= limit) stop
//                                                // (gate.NotSent(pass): could not be sent)
//   pass.Release();                              // (or at its end of scope)

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "runner/util/async.h"

namespace nanobatch::engine {

class SubmitGate {
 public:
  explicit SubmitGate(boost::asio::any_io_executor executor) : probe_(std::move(executor), 1) {}
  SubmitGate(const SubmitGate&) = delete;
  SubmitGate& operator=(const SubmitGate&) = delete;

  // One submit's way through the gate: the probe's unit while it is the probe.
  class Pass {
   public:
    explicit Pass(SubmitGate& gate) : gate_(&gate) {}
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() { Release(); }
    bool probe() const { return probe_; }
    // Gives the probe's unit back, if this pass holds it.
    void Release() {
      if (probe_) {
        probe_ = false;
        gate_->probe_.Release();
      }
    }

   private:
    friend class SubmitGate;
    SubmitGate* gate_;
    bool probe_ = false;
  };

  // Lets `pass` through: at once while answers come; while they are being lost, once no other
  // probe is out (first come, first served). False, with nothing held, when `stop` triggers.
  boost::asio::awaitable<bool> Enter(Pass& pass, util::StopSignal* stop);
  // The API answered a submit: every submit may go again.
  void Answered() {
    state_ = State::kOpen;
    probes_failed_ = 0;
  }
  // A submit's answer was lost: the gate narrows. Returns the probes without an answer in a
  // row (lost or not sent), this one included (0 when `pass` was no probe: a submit already out
  // when the first was lost).
  int Lost(const Pass& pass);
  // A submit could not be sent (the API unreachable: connection refused, a TLS handshake that
  // never ends). Nothing was charged, but every submit would meet the same, each waiting out its
  // own connect timeout: the gate narrows too, so that the probes, one at a time, count the
  // outage for every item (counted by each item alone, in turns, 1,000 items needed 6,000
  // connect timeouts to give up). Returns as Lost does.
  int NotSent(const Pass& pass);
  // The probes without an answer in a row: a probe waits before its retry as one item would
  // after as many failures.
  int probes_failed() const { return probes_failed_; }
  bool narrowed() const { return state_ != State::kOpen; }
  // Narrowed because answers were lost (not merely not yet answered, at the start).
  bool losing() const { return state_ == State::kLosing; }
  // Narrowed because submits could not be sent (and none was lost since).
  bool unreachable() const { return state_ == State::kUnreachable; }

 private:
  enum class State { kFirstAnswer, kOpen, kLosing, kUnreachable };

  util::AsyncSemaphore probe_;
  State state_ = State::kFirstAnswer;
  int probes_failed_ = 0;
};

}  // namespace nanobatch::engine
