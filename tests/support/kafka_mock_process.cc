#include "tests/support/kafka_mock_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/status_macros.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace outboxd::test {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(10);
constexpr absl::Duration kCommandTimeout = absl::Seconds(10);
constexpr absl::Duration kStopTimeout = absl::Seconds(5);

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<KafkaMockProcess>> KafkaMockProcess::Start(int brokers) {
  // A socketpair rather than two pipes: one descriptor for both directions, and send() with
  // MSG_NOSIGNAL turns a dead child into an EPIPE error instead of a SIGPIPE that kills the test.
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoError("socketpair");
  }
  std::string program = BinaryPath("kafka-mock");
  std::string brokers_flag = absl::StrCat("--brokers=", brokers);
  char* argv[] = {program.data(), brokers_flag.data(), nullptr};

  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec. dup2 clears O_CLOEXEC on 0 and 1.
    dup2(fds[1], STDIN_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    execv(program.c_str(), argv);
    _exit(127);
  }
  const int fork_errno = errno;
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    errno = fork_errno;
    return ErrnoError("fork");
  }
  std::unique_ptr<KafkaMockProcess> process(new KafkaMockProcess(pid, fds[0]));
  absl::StatusOr<std::string> bootstrap = process->ReadLine(kStartTimeout);
  if (!bootstrap.ok()) {
    return absl::Status(bootstrap.status().code(),
                        absl::StrCat(program, " did not print its bootstrap list: ",
                                     bootstrap.status().message()));
  }
  process->bootstrap_ = *bootstrap;
  return process;
}

KafkaMockProcess::~KafkaMockProcess() {
  kill(pid_, SIGTERM);
  auto exited = [this] { return waitpid(pid_, nullptr, WNOHANG) == pid_; };
  if (!WaitFor(exited, kStopTimeout, absl::Milliseconds(10))) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  close(control_fd_);
}

absl::StatusOr<std::string> KafkaMockProcess::ReadLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const size_t newline = pending_.find('\n');
    if (newline != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return line;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("no answer from kafka-mock within ", absl::FormatDuration(timeout)));
    }
    pollfd pfd = {control_fd_, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno != EINTR) return ErrnoError("poll");
    if (ready <= 0) continue;
    char buffer[1024];
    const ssize_t n = read(control_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read from kafka-mock");
    if (n == 0) return absl::UnavailableError("kafka-mock exited");
    pending_.append(buffer, static_cast<size_t>(n));
  }
}

absl::Status KafkaMockProcess::Command(absl::string_view line) {
  const std::string message = absl::StrCat(line, "\n");
  size_t sent = 0;
  while (sent < message.size()) {
    const ssize_t n = send(control_fd_, message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("send to kafka-mock");
    sent += static_cast<size_t>(n);
  }
  ASSIGN_OR_RETURN(std::string answer, ReadLine(kCommandTimeout));
  if (answer != "ok") {
    return absl::InternalError(absl::StrCat("kafka-mock \"", line, "\": ", answer));
  }
  return absl::OkStatus();
}

absl::Status KafkaMockProcess::BrokerDown(int id) { return Command(absl::StrCat("down ", id)); }
absl::Status KafkaMockProcess::BrokerUp(int id) { return Command(absl::StrCat("up ", id)); }
absl::Status KafkaMockProcess::AllDown() { return Command("down all"); }
absl::Status KafkaMockProcess::AllUp() { return Command("up all"); }
absl::Status KafkaMockProcess::CreateTopic(absl::string_view name, int partitions) {
  return Command(absl::StrCat("topic ", name, " ", partitions));
}

}  // namespace outboxd::test
