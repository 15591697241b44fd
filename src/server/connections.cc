#include "server/connections.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace modelreg::server {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long a connection refused at the cap, or one closed with its request
// body unread, is drained before it is closed: closing a socket with unread
// bytes sends a reset, and the client may lose the reply it has not read yet.
constexpr milliseconds kLingerQuiet{2000};   // no byte for this long: close
constexpr milliseconds kLingerTotal{10000};  // and never longer than this
constexpr std::size_t kMaxLingering = 1024;  // refused connections drained at once

const char* Reason(int status) {
  switch (status) {
    case 401: return "Unauthorized";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

// A complete reply that ends the connection, with the API's JSON error body.
std::string ErrorReply(int status, const std::string& code, const std::string& message,
                       const std::string& extra_headers) {
  const std::string body =
      nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace) +
      "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "Connection: close\r\n\r\n" + body;
}

// Printable ASCII of a header name, for messages.
std::string Printable(const std::string& s) {
  std::string out;
  for (char c : s) out += (c >= 0x21 && c <= 0x7e) ? c : '?';
  return out;
}

enum class Ready { kReady, kTimeout, kStopped, kError };

// Waits for `events` on `fd` until `deadline`, or until `stop_fd` (if >= 0)
// becomes readable.
Ready WaitFor(int fd, short events, Clock::time_point deadline, int stop_fd) {
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Ready::kTimeout;
    pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int n = poll(p, stop_fd >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Ready::kError;
    }
    if (n == 0) continue;
    if (stop_fd >= 0 && (p[1].revents & POLLIN) != 0) return Ready::kStopped;
    if (p[0].revents != 0) return Ready::kReady;  // data, or a hang-up the next call reports
  }
}

void Signal(int event_fd) {
  const std::uint64_t one = 1;
  const ssize_t n = ::write(event_fd, &one, sizeof one);
  (void)n;  // a full counter is still readable
}

// Answers connections refused at the cap: the canned 503, then a short
// drain of what the client sends, then close. One thread, poll().
class Rejecter {
 public:
  explicit Rejecter(std::string reply) : reply_(std::move(reply)) {
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread_ = std::thread([this] { Run(); });
  }
  ~Rejecter() {
    stop_.store(true);
    Signal(wake_);
    thread_.join();
    close(wake_);
  }
  Rejecter(const Rejecter&) = delete;
  Rejecter& operator=(const Rejecter&) = delete;

  void Add(int fd) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      incoming_.push_back(fd);
    }
    Signal(wake_);
  }

 private:
  struct Pending {
    int fd;
    Clock::time_point quiet_until, until;
  };

  void Run() {
    std::vector<Pending> pending;
    std::vector<pollfd> fds;
    while (!stop_.load()) {
      std::vector<int> fresh;
      {
        std::lock_guard<std::mutex> lock(mu_);
        fresh.swap(incoming_);
      }
      const auto now = Clock::now();
      for (int fd : fresh) {
        // A fresh socket's send buffer takes the whole small reply.
        const ssize_t sent = send(fd, reply_.data(), reply_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)sent;
        shutdown(fd, SHUT_WR);
        if (pending.size() >= kMaxLingering) {
          close(fd);
        } else {
          pending.push_back({fd, now + kLingerQuiet, now + kLingerTotal});
        }
      }
      fds.assign(1, pollfd{wake_, POLLIN, 0});
      Clock::time_point next = Clock::time_point::max();
      for (const Pending& p : pending) {
        fds.push_back(pollfd{p.fd, POLLIN, 0});
        next = std::min({next, p.quiet_until, p.until});
      }
      int timeout = -1;
      if (!pending.empty()) {
        timeout = static_cast<int>(std::max<long long>(
            0, std::chrono::duration_cast<milliseconds>(next - Clock::now()).count() + 1));
      }
      if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        std::uint64_t v;
        const ssize_t n = ::read(wake_, &v, sizeof v);
        (void)n;
      }
      const auto after = Clock::now();
      std::vector<Pending> keep;
      for (std::size_t i = 0; i < pending.size(); ++i) {
        Pending p = pending[i];
        bool done = after >= p.until;
        if (!done && fds[i + 1].revents != 0) {
          char buf[4096];
          const ssize_t n = recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
          if (n > 0) {
            p.quiet_until = after + kLingerQuiet;
          } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            done = true;
          }
        }
        if (!done && after >= p.quiet_until) done = true;
        if (done) {
          close(p.fd);
        } else {
          keep.push_back(p);
        }
      }
      pending.swap(keep);
    }
    for (const Pending& p : pending) close(p.fd);
    for (int fd : incoming_) close(fd);
  }

  const std::string reply_;
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<int> incoming_;
  std::thread thread_;
};

}  // namespace

struct HttpServer::Impl {
  ConnectionLimits limits;
  bool tls = false;
  int stop_fd = -1;  // an eventfd, readable once the server stops
  std::atomic<std::uint64_t> open{0}, rejected{0}, timed_out{0};
  std::unique_ptr<Rejecter> rejecter;
  std::unique_ptr<httplib::Server> http;
  std::function<void(int)> raise_backlog;

  ~Impl() {
    http.reset();
    rejecter.reset();
    if (stop_fd >= 0) close(stop_fd);
  }
};

namespace {

using Shared = HttpServer::Impl;

// Set by the task queue while it runs a refused connection's task on the
// acceptor thread: process_and_close_socket hands the socket on.
thread_local bool t_refuse = false;

// A thread per admitted connection (created on demand, then reused), at
// most limits.max_connections; beyond that enqueue refuses.
class ConnectionQueue final : public httplib::TaskQueue {
 public:
  explicit ConnectionQueue(Shared& s) : s_(s) {}
  ~ConnectionQueue() override { shutdown(); }
  ConnectionQueue(const ConnectionQueue&) = delete;
  ConnectionQueue& operator=(const ConnectionQueue&) = delete;

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!shutdown_ && active_ < static_cast<std::size_t>(std::max(1, s_.limits.max_connections))) {
        bool have_thread = threads_.size() > active_;
        if (!have_thread) {
          try {
            threads_.emplace_back([this] { Work(); });
            have_thread = true;
          } catch (const std::system_error&) {
            // No thread to be had (RLIMIT_NPROC, memory): refuse, below.
          }
        }
        if (have_thread) {
          ++active_;
          s_.open.store(active_);
          jobs_.push_back(std::move(fn));
          cv_.notify_one();
          return;
        }
      }
    }
    // httplib 0.11's enqueue cannot fail, and only the task knows the
    // socket: run it here, flagged, and it hands the socket to the rejecter.
    t_refuse = true;
    fn();
    t_refuse = false;
  }

  // Called by httplib on the acceptor thread once it stopped accepting:
  // the connections in progress finish first.
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
      s_.open.store(active_);
    }
  }

  Shared& s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;  // touched by the acceptor thread only
  std::size_t active_ = 0;            // admitted and not finished
  bool shutdown_ = false;
};

enum class Stage { kHeaders, kBody };

// One connection: httplib's Stream over a non-blocking socket (or TLS),
// with the limits of ConnectionLimits applied per request.
class Connection final : public httplib::Stream {
 public:
  Connection(int fd, SSL* ssl, Shared& s) : fd_(fd), ssl_(ssl), s_(s), limits_(s.limits) {}
  ~Connection() override { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool is_readable() const override { return pos_ < len_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0); }
  bool is_writable() const override { return !broken_; }

  ssize_t read(char* ptr, size_t size) override {
    if (fault_ || broken_) return -1;
    if (size == 0) return 0;
    if (stage_ == Stage::kBody && no_body_) return 0;
    if (pos_ == len_) {
      const int r = Fill();
      if (r <= 0) return r;
    }
    std::size_t n = std::min(size, len_ - pos_);
    if (stage_ == Stage::kHeaders) {
      n = 1;  // httplib reads headers a byte at a time anyway
      if (!Track(buf_[pos_])) return -1;
    } else {
      body_bytes_ += n;
    }
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (broken_) return -1;
    if (size == 0) return 0;
    wrote_ = true;
    if (!replying_) {
      replying_ = true;
      reply_start_ = last_write_ = Clock::now();
      reply_bytes_ = 0;
    }
    for (;;) {
      ssize_t n = 0;
      short want = 0;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int r = SSL_write(ssl_, ptr, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
        if (r > 0) {
          n = r;
        } else {
          const int e = SSL_get_error(ssl_, r);
          want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : e == SSL_ERROR_WANT_READ ? POLLIN : 0;
          if (want == 0) return Broken();
        }
      } else {
        n = send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) return Broken();
          want = POLLOUT;
        }
      }
      if (want == 0) {
        reply_bytes_ += static_cast<std::uint64_t>(n);
        last_write_ = Clock::now();
        return n;
      }
      const auto deadline = std::min(last_write_ + limits_.stall,
                                     reply_start_ + limits_.grace + AtMinRate(reply_bytes_));
      const Ready ready = WaitFor(fd_, want, deadline, -1);
      if (ready == Ready::kReady) continue;
      if (ready == Ready::kTimeout) s_.timed_out.fetch_add(1);
      return Broken();
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { Address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { Address(false, ip, port); }
  socket_t socket() const override { return fd_; }

  // Between requests: true once the next request's first byte is here;
  // false after the idle limit, at EOF or when the server stops.
  bool WaitForRequest() {
    if (is_readable()) return true;
    return WaitFor(fd_, POLLIN, Clock::now() + limits_.idle, s_.stop_fd) == Ready::kReady;
  }

  void BeginRequest() {
    stage_ = Stage::kHeaders;
    header_deadline_ = Clock::now() + limits_.header_time;
    header_bytes_ = line_len_ = lines_ = 0;
    name_.clear();
    name_done_ = false;
    fault_.reset();
    close_after_ = no_body_ = wrote_ = replying_ = false;
    body_length_.reset();
    body_bytes_ = 0;
  }

  void HeadersRead(std::optional<std::uint64_t> length, bool chunked) {
    stage_ = Stage::kBody;
    body_start_ = last_read_ = Clock::now();
    body_length_ = chunked ? std::nullopt : length;
    no_body_ = !length && !chunked;
    replying_ = false;  // a "100 Continue" is not the reply
  }

  // After httplib's process_request: a fault in the request line left no
  // reply (httplib just returns), so it is written here.
  void EndRequest() {
    if (fault_ && !wrote_ && !broken_) {
      const std::string reply = ErrorReply(fault_->status, fault_->code, fault_->message,
                                           fault_->status == 401
                                               ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
                                               : "");
      for (std::size_t off = 0; off < reply.size();) {
        const ssize_t n = write(reply.data() + off, reply.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
    }
    // A body httplib did not read (a GET with one, a refusal from the
    // headers) would be taken for the next request.
    if (body_length_ && body_bytes_ < *body_length_) close_after_ = true;
  }

  bool MustClose() const { return fault_.has_value() || close_after_ || broken_ || stopped_; }

  void CloseAfterResponse() { close_after_ = true; }
  bool closing_after_response() const { return close_after_ || fault_.has_value(); }
  std::optional<RequestFault> fault() const { return fault_; }
  RequestStage stage() const {
    if (stage_ == Stage::kBody) return RequestStage::kBody;
    return lines_ <= 1 ? RequestStage::kRequestLine : RequestStage::kHeaders;
  }

  void Close() {
    if (fd_ < 0) return;
    const bool linger = (close_after_ || fault_) && !broken_ && !stopped_;
    if (ssl_ != nullptr) {
      if (!broken_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    shutdown(fd_, SHUT_WR);
    if (linger) {
      // The client may still be sending what was not read: drain it for a
      // while so that it sees the reply instead of a reset (briefly after a
      // timeout: that client is slow by definition).
      const bool timed_out = fault_ && fault_->status == 408;
      const auto until = Clock::now() + (timed_out ? kLingerQuiet : kLingerTotal);
      for (;;) {
        const Ready ready = WaitFor(fd_, POLLIN, std::min(until, Clock::now() + kLingerQuiet), s_.stop_fd);
        if (ready != Ready::kReady) break;
        char buf[16384];
        const ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
      }
    }
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    fd_ = -1;
  }

 private:
  static milliseconds AtMinRate(std::uint64_t bytes, std::uint64_t rate) {
    return milliseconds(static_cast<std::int64_t>(bytes / std::max<std::uint64_t>(1, rate) * 1000 +
                                                  bytes % std::max<std::uint64_t>(1, rate) * 1000 /
                                                      std::max<std::uint64_t>(1, rate)));
  }
  milliseconds AtMinRate(std::uint64_t bytes) const { return AtMinRate(bytes, limits_.min_rate); }

  ssize_t Broken() {
    broken_ = true;
    return -1;
  }

  // 1: data in the buffer; 0: EOF; -1: error, fault or stop.
  int Fill() {
    for (;;) {
      ssize_t n = 0;
      short want = 0;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int r = SSL_read(ssl_, buf_, sizeof buf_);
        if (r > 0) {
          n = r;
        } else {
          const int e = SSL_get_error(ssl_, r);
          if (e == SSL_ERROR_ZERO_RETURN) return 0;
          want = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
          if (want == 0) {
            broken_ = true;
            return e == SSL_ERROR_SYSCALL ? 0 : -1;  // closed without close_notify
          }
        }
      } else {
        n = recv(fd_, buf_, sizeof buf_, MSG_DONTWAIT);
        if (n == 0) return 0;
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) {
            broken_ = true;
            return -1;
          }
          want = POLLIN;
        }
      }
      if (want == 0) {
        pos_ = 0;
        len_ = static_cast<std::size_t>(n);
        last_read_ = Clock::now();
        return 1;
      }
      Clock::time_point deadline;
      int stop_fd = -1;
      if (stage_ == Stage::kHeaders) {
        deadline = header_deadline_;
        stop_fd = s_.stop_fd;  // a request not yet read is dropped at shutdown
      } else {
        deadline = std::min(last_read_ + limits_.stall,
                            body_start_ + limits_.grace + AtMinRate(body_bytes_));
      }
      switch (WaitFor(fd_, want, deadline, stop_fd)) {
        case Ready::kReady:
          continue;
        case Ready::kTimeout:
          return TimedOut();
        case Ready::kStopped:
          stopped_ = true;
          Fault(503, "busy", "the server is stopping");
          return -1;
        case Ready::kError:
          broken_ = true;
          return -1;
      }
    }
  }

  int TimedOut() {
    s_.timed_out.fetch_add(1);
    const auto secs = [](milliseconds ms) { return std::to_string(ms.count() / 1000) + " s"; };
    if (stage_ == Stage::kHeaders) {
      Fault(408, "timeout",
            "the request line and headers did not arrive within " + secs(limits_.header_time) +
                " of their first byte");
    } else if (Clock::now() - last_read_ >= limits_.stall) {
      Fault(408, "timeout", "the request body stalled: no byte for " + secs(limits_.stall));
    } else {
      Fault(408, "timeout",
            "the request body arrived slower than " + std::to_string(limits_.min_rate) +
                " bytes/s on average (the minimum after the first " + secs(limits_.grace) + ")");
    }
    return -1;
  }

  bool Fault(int status, const char* code, std::string message) {
    fault_ = RequestFault{status, code, std::move(message)};
    return false;
  }

  // One header-stage byte: the line and total size limits.
  bool Track(char c) {
    ++header_bytes_;
    ++line_len_;
    if (header_bytes_ > limits_.max_header_bytes) {
      return Fault(431, "too_large",
                   "the request line and headers are larger than " +
                       std::to_string(limits_.max_header_bytes) + " bytes");
    }
    if (line_len_ > kMaxHeaderLine) {
      if (lines_ == 0) {
        return Fault(414, "too_large",
                     "the request line is longer than " + std::to_string(kMaxHeaderLine) + " bytes");
      }
      std::string lower;
      for (char ch : name_) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (lower == "authorization") {
        return Fault(401, "unauthenticated",
                     "token too long (limit " + std::to_string(kMaxBearerToken) +
                         " bytes): the header line \"Authorization: Bearer <token>\" may be at most " +
                         std::to_string(kMaxHeaderLine) + " bytes");
      }
      return Fault(431, "too_large",
                   "the header " + Printable(name_) + " is longer than " +
                       std::to_string(kMaxHeaderLine) + " bytes (the limit per header line)");
    }
    if (!name_done_) {
      if (c == ':' || name_.size() >= 64) {
        name_done_ = true;
      } else if (c != '\r' && c != '\n') {
        name_ += c;
      }
    }
    if (c == '\n') {
      ++lines_;
      line_len_ = 0;
      name_.clear();
      name_done_ = false;
    }
    return true;
  }

  void Address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    auto* sa = reinterpret_cast<sockaddr*>(&addr);
    if ((remote ? getpeername(fd_, sa, &len) : getsockname(fd_, sa, &len)) != 0) return;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) ==
        0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  int fd_;
  SSL* ssl_;
  Shared& s_;
  const ConnectionLimits& limits_;
  char buf_[16384];
  std::size_t pos_ = 0, len_ = 0;

  Stage stage_ = Stage::kHeaders;
  Clock::time_point header_deadline_;
  std::size_t header_bytes_ = 0, line_len_ = 0, lines_ = 0;
  std::string name_;  // of the header line being read
  bool name_done_ = false;

  Clock::time_point body_start_, last_read_;
  std::optional<std::uint64_t> body_length_;
  std::uint64_t body_bytes_ = 0;
  bool no_body_ = false;

  bool replying_ = false, wrote_ = false;
  Clock::time_point reply_start_, last_write_;
  std::uint64_t reply_bytes_ = 0;

  std::optional<RequestFault> fault_;
  bool close_after_ = false, broken_ = false, stopped_ = false;
};

thread_local Connection* t_conn = nullptr;

// The TLS handshake, bounded like a request's headers.
SSL* Handshake(int fd, SSL_CTX* ctx, const Shared& s) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  SSL_set_fd(ssl, fd);
  const auto deadline = Clock::now() + s.limits.header_time;
  for (;;) {
    ERR_clear_error();
    const int r = SSL_accept(ssl);
    if (r == 1) return ssl;
    const int e = SSL_get_error(ssl, r);
    const short want = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (want == 0 || WaitFor(fd, want, deadline, s.stop_fd) != Ready::kReady) {
      SSL_free(ssl);
      return nullptr;
    }
  }
}

// httplib::Server (or SSLServer) whose connections run through Connection.
// process_and_close_socket is httplib's per-connection entry point (a
// private virtual: overriding it is allowed, calling the base's is not, so
// the keep-alive loop is ours; process_request is protected).
template <class Base>
class Guarded final : public Base {
 public:
  template <class... Args>
  explicit Guarded(Shared& s, Args&&... args) : Base(std::forward<Args>(args)...), s_(s) {}

  void RaiseBacklog(int backlog) {
    const socket_t sock = this->svr_sock_;
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    if (t_refuse) {
      s_.rejected.fetch_add(1);
      if (s_.tls) {
        close(sock);  // no plain-text reply inside TLS
      } else {
        s_.rejecter->Add(sock);
      }
      return false;
    }
    const int flags = fcntl(sock, F_GETFL, 0);
    fcntl(sock, F_SETFL, flags | O_NONBLOCK);
    SSL* ssl = nullptr;
    if constexpr (std::is_base_of_v<httplib::SSLServer, Base>) {
      ssl = Handshake(sock, this->ssl_context(), s_);
      if (ssl == nullptr) {
        shutdown(sock, SHUT_RDWR);
        close(sock);
        return false;
      }
    }
    Connection conn(sock, ssl, s_);
    t_conn = &conn;
    bool ret = false;
    const int max = std::max(1, s_.limits.max_requests_per_connection);
    for (int n = 0; n < max; ++n) {
      if (this->svr_sock_ == INVALID_SOCKET) break;
      if (!conn.WaitForRequest()) break;
      conn.BeginRequest();
      bool closed = false;
      if (ssl != nullptr) {
        ret = this->process_request(conn, n + 1 == max, closed,
                                    [ssl](httplib::Request& req) { req.ssl = ssl; });
      } else {
        ret = this->process_request(conn, n + 1 == max, closed, nullptr);
      }
      conn.EndRequest();
      if (!ret || closed || conn.MustClose()) break;
    }
    conn.Close();
    t_conn = nullptr;
    return ret;
  }

  Shared& s_;
};

template <class Base, class... Args>
std::unique_ptr<httplib::Server> MakeGuarded(Shared& s, Args&&... args) {
  auto g = std::make_unique<Guarded<Base>>(s, std::forward<Args>(args)...);
  if (!g->is_valid()) return nullptr;
  Guarded<Base>* raw = g.get();
  s.raise_backlog = [raw](int backlog) { raw->RaiseBacklog(backlog); };
  return g;
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

std::unique_ptr<HttpServer> HttpServer::Create(const ConnectionLimits& limits,
                                               const std::string& tls_cert,
                                               const std::string& tls_key) {
  auto impl = std::make_unique<Impl>();
  impl->limits = limits;
  impl->tls = !tls_cert.empty();
  impl->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->stop_fd < 0) return nullptr;
  if (impl->tls) {
    impl->http = MakeGuarded<httplib::SSLServer>(*impl, tls_cert.c_str(), tls_key.c_str());
  } else {
    impl->http = MakeGuarded<httplib::Server>(*impl);
  }
  if (!impl->http) return nullptr;
  impl->rejecter = std::make_unique<Rejecter>(ErrorReply(
      503, "busy",
      "the server has " + std::to_string(limits.max_connections) +
          " connections open, its limit (--max-connections); retry after " +
          std::to_string(limits.retry_after_seconds) + " s",
      "Retry-After: " + std::to_string(limits.retry_after_seconds) + "\r\n"));
  Impl* raw = impl.get();
  impl->http->new_task_queue = [raw] { return new ConnectionQueue(*raw); };
  // What httplib announces in Keep-Alive: headers; the loop above enforces it.
  impl->http->set_keep_alive_max_count(static_cast<std::size_t>(std::max(1, limits.max_requests_per_connection)));
  impl->http->set_keep_alive_timeout(std::max<time_t>(1, limits.idle.count() / 1000));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

httplib::Server& HttpServer::http() { return *impl_->http; }

void HttpServer::RaiseBacklog() {
  impl_->raise_backlog(std::clamp(impl_->limits.max_connections, 16, 4096));
}

void HttpServer::Stop() {
  Signal(impl_->stop_fd);
  impl_->http->stop();
}

ConnectionStats HttpServer::stats() const {
  return ConnectionStats{impl_->open.load(), impl_->rejected.load(), impl_->timed_out.load()};
}

void HeadersRead(std::optional<std::uint64_t> content_length, bool chunked) {
  if (t_conn != nullptr) t_conn->HeadersRead(content_length, chunked);
}

void CloseAfterResponse() {
  if (t_conn != nullptr) t_conn->CloseAfterResponse();
}

bool ClosingAfterResponse() { return t_conn != nullptr && t_conn->closing_after_response(); }

std::optional<RequestFault> CurrentFault() {
  return t_conn != nullptr ? t_conn->fault() : std::nullopt;
}

RequestStage CurrentStage() {
  return t_conn != nullptr ? t_conn->stage() : RequestStage::kBody;
}

}  // namespace modelreg::server
