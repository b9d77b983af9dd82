// pgregion: a region-aware PostgreSQL routing proxy.
//   pgregion --config FILE    run
//   pgregion --check FILE     validate a config and exit
//   pgregion --version

#include <malloc.h>
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "protocol/str_util.h"
#include "proxy/app/proxy_app.h"
#include "proxy/config/config.h"
#include "proxy/net/log.h"

namespace {

void Usage() {
  fprintf(stderr,
          "usage: pgregion --config FILE | --check FILE | --version\n"
          "  --config FILE   run with the TOML configuration FILE\n"
          "  --check FILE    validate FILE and exit (non-zero on error)\n"
          "  --version       print the version\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pgregion::proxy;
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version" || arg == "-V") {
      printf("pgregion %s\n", PGREGION_VERSION);
      return 0;
    }
    if ((arg == "--config" || arg == "-c" || arg == "--check") && i + 1 < argc) {
      check = check || arg == "--check";
      config_path = argv[++i];
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      Usage();
      return 0;
    }
    Usage();
    return 2;
  }
  if (config_path.empty()) {
    Usage();
    return 2;
  }
  absl::StatusOr<std::shared_ptr<const Config>> config = LoadConfigFile(config_path);
  if (!config.ok()) {
    fprintf(stderr, "pgregion: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (check) {
    printf("pgregion: %s is valid\n", config_path.c_str());
    return 0;
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel((*config)->log.level, &level);
  SetLogLevel(level);
  SetLogJson((*config)->log.format == "json");
  signal(SIGPIPE, SIG_IGN);
  // glibc raises its mmap threshold to the largest block freed so far (up to
  // 32 MiB), so after one large message every later large buffer comes from
  // the heap and its pages stay in RSS once freed: a 9 MB statement left the
  // process at 838 MB for good. A fixed threshold turns that dynamic behaviour
  // off: buffers from 256 KiB up are mmap()ed and returned on free, and the
  // heap is trimmed once 1 MiB at its top is free. Buffers this large are
  // rare (Stream and the sessions free theirs above 64 KiB once emptied).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024);

  uv_loop_t* loop = uv_default_loop();
  int rc = 0;
  {
    ProxyApp app(loop, *config);
    absl::Status st = app.Start();
    if (!st.ok()) {
      LogError("startup_failed").Kv("error", pgregion::ToStd(st.message()));
      rc = 1;
    } else {
      uv_run(loop, UV_RUN_DEFAULT);
    }
    // Let close callbacks run before the app's memory goes away.
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_run(loop, UV_RUN_DEFAULT);  // close callbacks of what ~ProxyApp closed
  uv_loop_close(loop);
  LogInfo("exit").Kv("code", rc);
  return rc;
}
