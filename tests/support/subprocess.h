// A child process for integration tests, with its output kept in files.
//
//   auto relay = Subprocess::Start({BinaryPath("outboxd"), "run", "--postgres=" + conninfo},
//                                  {{"OUTBOXD_BROKERS", kafka->bootstrap()}});
//   ASSERT_TRUE(relay.ok()) << relay.status();
//   ...
//   EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();  // SIGTERM, then wait
//
// stdout and stderr go to temporary files rather than pipes, so a chatty child never blocks on a
// full pipe and nothing it printed is lost when it crashes; read them at any time. stdin is
// /dev/null.
//
// No test binds outboxd's default ports: `outboxd run` serves its admin API on 127.0.0.1:7700 and
// metrics on 127.0.0.1:9187 unless told otherwise, and a test doing that would reach a
// developer's running relay (or take the port from the next test). Start() refuses an
// `outboxd run` whose --admin_listen or --metrics_listen is not given (flag or OUTBOXD_*
// variable) or names a default port; AddTestListenFlags() adds free-port flags (127.0.0.1:0; the
// relay logs the address it bound: "admin API listening on ...", "metrics listening on
// http://...").
#ifndef OUTBOXD_TESTS_SUPPORT_SUBPROCESS_H_
#define OUTBOXD_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace outboxd::test {

// OUTBOXD_BIN_DIR/name: where the build puts `outboxd`, `kafka-mock` and the other binaries.
std::string BinaryPath(absl::string_view name);

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// For `outboxd run` (argv[0] named outboxd, argv[1] "run"): FailedPrecondition naming the fix
// unless both listen addresses are given on the command line or in extra_env, and neither is a
// default port. OK for anything else, and for --help.
absl::Status CheckListenFlags(const std::vector<std::string>& argv, const EnvVars& extra_env);
// For `outboxd run`: inserts --admin_listen=127.0.0.1:0 and --metrics_listen=127.0.0.1:0 after
// "run" where argv and extra_env give none.
void AddTestListenFlags(std::vector<std::string>& argv, const EnvVars& extra_env = {});

// Used from one test thread; not thread-safe.
class Subprocess {
 public:
  // argv[0] is a path, or a name looked up in PATH. extra_env is added to (or overrides) this
  // process's environment for the child. CheckListenFlags() must pass.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(std::vector<std::string> argv,
                                                           EnvVars extra_env = {});

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills (SIGKILL) and reaps the child if it is still running, and removes the output files.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // False once the child has exited (it is reaped here).
  bool Running();
  // The exit code, or 128 + signal number if a signal ended the child (as a shell reports it).
  // DeadlineExceeded if it is still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // Does nothing once the child has been reaped (its pid may belong to someone else by then).
  void Signal(int sig);
  // SIGTERM, then Wait(timeout): the exit code, or -1 if the child still runs after `timeout`
  // (the destructor kills it).
  int Terminate(absl::Duration timeout = absl::Seconds(20));

  std::string Stdout() const;
  std::string Stderr() const;

 private:
  Subprocess(pid_t pid, std::string stdout_path, std::string stderr_path)
      : pid_(pid), stdout_path_(std::move(stdout_path)), stderr_path_(std::move(stderr_path)) {}
  // Non-blocking waitpid; records the exit code when the child has ended.
  void Reap(bool block);

  pid_t pid_;
  std::optional<int> exit_code_;
  std::string stdout_path_;
  std::string stderr_path_;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_SUBPROCESS_H_
