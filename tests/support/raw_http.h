// Raw TCP connections to a local HTTP server, for tests that must send bytes
// no HTTP client would (slow headers, half bodies, malformed requests).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>

namespace modelreg::testing {

// A connected socket to 127.0.0.1:port, or -1.
inline int ConnectLocal(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Sends all of `data`; false when the peer is gone.
inline bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

struct Received {
  std::string data;
  bool closed = false;  // the peer closed (EOF or reset) before the time was up
};

// Reads until the peer closes or `timeout` passes.
inline Received ReadUntilClosed(int fd, std::chrono::milliseconds timeout) {
  Received r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return r;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      r.closed = true;
      return r;
    }
    r.data.append(buf, static_cast<std::size_t>(n));
  }
}

// Reads one response's status line and headers (up to the blank line), or
// what arrived until the peer closed or `timeout` passed.
inline std::string ReadHead(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.find("\r\n\r\n") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

struct RawResponse {
  int status = 0;          // 0: no (complete) status line
  std::string head;        // status line and headers
  std::string body;
  bool complete = false;   // the whole body (by Content-Length) arrived
  std::string header(std::string_view name) const {
    std::string lower_head;
    for (char c : head) lower_head += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string key = "\r\n";
    for (char c : name) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    key += ":";
    const auto at = lower_head.find(key);
    if (at == std::string::npos) return "";
    auto begin = at + key.size();
    while (begin < head.size() && head[begin] == ' ') ++begin;
    return head.substr(begin, head.find("\r\n", begin) - begin);
  }
};

// Sends `request` on a fresh connection and reads one response (status,
// headers, a Content-Length body) within `timeout`.
inline RawResponse Exchange(int port, std::string_view request, std::chrono::milliseconds timeout) {
  RawResponse r;
  const int fd = ConnectLocal(port);
  if (fd < 0) return r;
  SendAll(fd, request);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string in;
  std::size_t need = std::string::npos;
  for (;;) {
    const auto end = in.find("\r\n\r\n");
    if (end != std::string::npos && need == std::string::npos) {
      r.head = in.substr(0, end);
      if (r.head.size() > 12 && r.head.rfind("HTTP/1.", 0) == 0) r.status = std::atoi(r.head.c_str() + 9);
      const std::string length = r.header("Content-Length");
      need = end + 4 + (length.empty() ? 0 : std::stoul(length));
    }
    if (need != std::string::npos && in.size() >= need) {
      r.body = in.substr(r.head.size() + 4, need - r.head.size() - 4);
      r.complete = true;
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return r;
}

}  // namespace modelreg::testing
