#include "runner/engine/submit_gate.h"

#include <boost/asio/use_awaitable.hpp>

namespace nanobatch::engine {

boost::asio::awaitable<bool> SubmitGate::Enter(Pass& pass, util::StopSignal* stop) {
  pass.Release();
  if (!narrowed()) co_return true;
  // Named, not awaited in the if's condition: GCC 12.2 miscompiles that in a coroutine with no
  // local variable (tools/coroutine_lint.py), and this one crashed at its first call.
  const bool probe = co_await probe_.Acquire(stop);
  if (!probe) co_return false;
  if (!narrowed()) {
    // Opened while this one waited: no probe needed (the next waiter passes the same way).
    probe_.Release();
    co_return true;
  }
  pass.probe_ = true;
  co_return true;
}

int SubmitGate::Lost(const Pass& pass) {
  state_ = State::kLosing;
  return pass.probe() ? ++probes_failed_ : 0;
}

int SubmitGate::NotSent(const Pass& pass) {
  if (state_ != State::kLosing) state_ = State::kUnreachable;
  return pass.probe() ? ++probes_failed_ : 0;
}

}  // namespace nanobatch::engine
