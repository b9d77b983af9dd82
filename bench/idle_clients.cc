// idle_clients: opens N libpq connections to one conninfo, holds them idle, and
// reports how many succeeded. Used by bench/idle_memory.sh to measure a proxy's
// memory per idle client connection.
//
// Single-threaded: connections are started with PQconnectStart and driven with
// PQconnectPoll from one poll(2) loop, at most --parallel of them in flight, so
// 2,000 connections need neither 2,000 threads nor a long serial handshake.
//
// Output (stdout, one line each, stable for scripts):
//   connected=N failed=M elapsed_ms=T
//   alive_after_hold=K            (after the hold; connections still usable)
// With --ready-file PATH, the "connected=" line is also written to PATH once
// every attempt has finished, so a script can measure while connections are held.
// Exit status: 0 if all N connected and stayed alive, 1 otherwise, 2 on usage error.

#include <poll.h>
#include <sys/resource.h>

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

struct Options {
  std::string conninfo;
  int count = 2000;
  int parallel = 64;            // connections in flight at once
  double hold_s = 5.0;          // how long to hold them idle once connected
  double connect_timeout_s = 60.0;  // deadline for all attempts together
  std::string ready_file;
};

enum class ConnState { kPending, kConnecting, kOk, kFailed };

struct Conn {
  PGconn* pg = nullptr;
  ConnState state = ConnState::kPending;
  PostgresPollingStatusType wants = PGRES_POLLING_WRITING;
};

void Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --conninfo STR [-n COUNT] [--parallel K] [--hold SECONDS]\n"
               "          [--timeout SECONDS] [--ready-file PATH]\n"
               "Opens COUNT connections (default 2000), holds them idle for SECONDS\n"
               "(default 5; SIGTERM/SIGINT ends the hold early) and reports results.\n",
               argv0);
}

bool ParseArgs(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    const char* v = nullptr;
    if (a == "--conninfo" || a == "-d") {
      if (!(v = next(a.c_str()))) return false;
      opt->conninfo = v;
    } else if (a == "-n" || a == "--count") {
      if (!(v = next(a.c_str()))) return false;
      opt->count = std::atoi(v);
    } else if (a == "--parallel") {
      if (!(v = next(a.c_str()))) return false;
      opt->parallel = std::atoi(v);
    } else if (a == "--hold") {
      if (!(v = next(a.c_str()))) return false;
      opt->hold_s = std::atof(v);
    } else if (a == "--timeout") {
      if (!(v = next(a.c_str()))) return false;
      opt->connect_timeout_s = std::atof(v);
    } else if (a == "--ready-file") {
      if (!(v = next(a.c_str()))) return false;
      opt->ready_file = v;
    } else if (a == "-h" || a == "--help") {
      return false;
    } else {
      std::fprintf(stderr, "unknown argument: %s\n", a.c_str());
      return false;
    }
  }
  if (opt->conninfo.empty() || opt->count <= 0 || opt->parallel <= 0 || opt->hold_s < 0 ||
      opt->connect_timeout_s <= 0) {
    return false;
  }
  return true;
}

// Each connection needs one descriptor; leave headroom for stdio and libpq.
void RaiseFdLimit(int count) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = static_cast<rlim_t>(count) + 64;
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = std::min(want, rl.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
    std::fprintf(stderr, "warning: RLIMIT_NOFILE is %llu, below the %llu needed\n",
                 static_cast<unsigned long long>(rl.rlim_cur),
                 static_cast<unsigned long long>(want));
  }
}

// Starts one attempt. A failure to even start counts as failed.
void Start(Conn* c, const Options& opt, std::map<std::string, int>* errors) {
  c->pg = PQconnectStart(opt.conninfo.c_str());
  if (c->pg == nullptr || PQstatus(c->pg) == CONNECTION_BAD) {
    ++(*errors)[c->pg ? PQerrorMessage(c->pg) : "PQconnectStart returned null"];
    c->state = ConnState::kFailed;
    return;
  }
  c->state = ConnState::kConnecting;
  c->wants = PGRES_POLLING_WRITING;  // as libpq documents for the first poll
}

void Advance(Conn* c, std::map<std::string, int>* errors) {
  c->wants = PQconnectPoll(c->pg);
  if (c->wants == PGRES_POLLING_OK) {
    c->state = ConnState::kOk;
  } else if (c->wants == PGRES_POLLING_FAILED) {
    std::string msg = PQerrorMessage(c->pg);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    ++(*errors)[msg];
    c->state = ConnState::kFailed;
  }
}

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    Usage(argv[0]);
    return 2;
  }
  RaiseFdLimit(opt.count);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);

  std::vector<Conn> conns(static_cast<size_t>(opt.count));
  std::map<std::string, int> errors;
  const auto t0 = Clock::now();
  size_t next_to_start = 0;
  int in_flight = 0;
  int ok = 0;
  int failed = 0;

  std::vector<pollfd> pfds;
  std::vector<size_t> pfd_owner;
  pfds.reserve(static_cast<size_t>(opt.parallel));
  pfd_owner.reserve(static_cast<size_t>(opt.parallel));

  // Bounded by the attempt count (each iteration finishes or advances some
  // attempt, or waits at most 100 ms) and by the overall deadline.
  while (ok + failed < opt.count && !g_stop) {
    while (in_flight < opt.parallel && next_to_start < conns.size()) {
      Conn& c = conns[next_to_start++];
      Start(&c, opt, &errors);
      if (c.state == ConnState::kFailed) {
        ++failed;
      } else {
        ++in_flight;
      }
    }
    if (SecondsSince(t0) > opt.connect_timeout_s) break;

    pfds.clear();
    pfd_owner.clear();
    for (size_t i = 0; i < conns.size() && i < next_to_start; ++i) {
      Conn& c = conns[i];
      if (c.state != ConnState::kConnecting) continue;
      // The socket can change between polls (e.g. a retry without SSL).
      int fd = PQsocket(c.pg);
      if (fd < 0) {
        Advance(&c, &errors);
        continue;
      }
      short ev = c.wants == PGRES_POLLING_READING ? POLLIN : POLLOUT;
      pfds.push_back(pollfd{fd, ev, 0});
      pfd_owner.push_back(i);
    }
    if (pfds.empty()) {
      // Attempts may have finished in Advance() above; recount below.
    } else {
      int n = poll(pfds.data(), pfds.size(), 100);
      if (n < 0 && errno != EINTR) {
        std::perror("poll");
        break;
      }
      for (size_t k = 0; n > 0 && k < pfds.size(); ++k) {
        if (pfds[k].revents == 0) continue;
        Advance(&conns[pfd_owner[k]], &errors);
      }
    }
    ok = failed = in_flight = 0;
    for (size_t i = 0; i < next_to_start; ++i) {
      switch (conns[i].state) {
        case ConnState::kOk: ++ok; break;
        case ConnState::kFailed: ++failed; break;
        case ConnState::kConnecting: ++in_flight; break;
        case ConnState::kPending: break;
      }
    }
  }
  // Whatever did not finish by the deadline counts as failed.
  int timed_out = 0;
  for (Conn& c : conns) {
    if (c.state == ConnState::kConnecting || c.state == ConnState::kPending) {
      c.state = ConnState::kFailed;
      ++timed_out;
    }
  }
  if (timed_out > 0) errors["not connected before the deadline"] += timed_out;
  failed = opt.count - ok;
  const double elapsed_ms = SecondsSince(t0) * 1000.0;

  char line[160];
  std::snprintf(line, sizeof(line), "connected=%d failed=%d elapsed_ms=%.0f\n", ok, failed,
                elapsed_ms);
  std::fputs(line, stdout);
  std::fflush(stdout);
  for (const auto& [msg, n] : errors) std::fprintf(stderr, "error x%d: %s\n", n, msg.c_str());

  if (!opt.ready_file.empty()) {
    std::string tmp = opt.ready_file + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fputs(line, f);
      std::fclose(f);
      std::rename(tmp.c_str(), opt.ready_file.c_str());
    }
  }

  // Hold: the connections stay idle; anything the server sends (ParameterStatus,
  // a FATAL before closing) is consumed so we can tell who is still alive.
  const auto hold_start = Clock::now();
  while (!g_stop && SecondsSince(hold_start) < opt.hold_s) {
    pfds.clear();
    pfd_owner.clear();
    for (size_t i = 0; i < conns.size(); ++i) {
      if (conns[i].state != ConnState::kOk) continue;
      pfds.push_back(pollfd{PQsocket(conns[i].pg), POLLIN, 0});
      pfd_owner.push_back(i);
    }
    if (pfds.empty()) break;
    int n = poll(pfds.data(), pfds.size(), 200);
    for (size_t k = 0; n > 0 && k < pfds.size(); ++k) {
      if (pfds[k].revents == 0) continue;
      Conn& c = conns[pfd_owner[k]];
      if (!PQconsumeInput(c.pg) || PQstatus(c.pg) == CONNECTION_BAD) c.state = ConnState::kFailed;
    }
  }
  int alive = 0;
  for (Conn& c : conns) {
    if (c.state == ConnState::kOk && PQstatus(c.pg) == CONNECTION_OK) ++alive;
  }
  std::printf("alive_after_hold=%d\n", alive);
  std::fflush(stdout);

  for (Conn& c : conns) {
    if (c.pg != nullptr) PQfinish(c.pg);
  }
  return (ok == opt.count && alive == opt.count) ? 0 : 1;
}
