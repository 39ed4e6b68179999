#pragma once
// Loopback and local sockets for end-to-end tests: a free TCP port for a listener the test starts
// (the kernel's pick), and a NOTIFY_SOCKET as systemd makes one, read by the test.
//
// Example:
//   const int port = FreeLoopbackPort();
//   NotifySocket socket;   // pass socket.path as $NOTIFY_SOCKET
//   SilentListener silent;  // https://127.0.0.1:<silent.port()> never answers
//   ... run ...
//   for (const std::string& message : socket.Messages()) ...

#include <string>
#include <vector>

namespace nanobatch::testing {

// A loopback TCP port free right now.
int FreeLoopbackPort();

// A loopback TCP listener that never accepts: connections complete in the kernel, and then
// nothing is ever said on them (a server black-holed behind its load balancer).
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A datagram socket in the abstract namespace ("@name": test directories are too long for a
// socket path), as systemd's notify socket.
class NotifySocket {
 public:
  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  // Every message received since the last call.
  std::vector<std::string> Messages();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace nanobatch::testing
