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
#ifndef OUTBOXD_TESTS_SUPPORT_SUBPROCESS_H_
#define OUTBOXD_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace outboxd::test {

// OUTBOXD_BIN_DIR/name: where the build puts `outboxd`, `kafka-mock` and the other binaries.
std::string BinaryPath(absl::string_view name);

// Used from one test thread; not thread-safe.
class Subprocess {
 public:
  // argv[0] is a path, or a name looked up in PATH. extra_env is added to (or overrides) this
  // process's environment for the child.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      std::vector<std::string> argv,
      std::vector<std::pair<std::string, std::string>> extra_env = {});

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
