#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "outboxd/status_macros.h"
#include "tests/support/wait.h"

extern char** environ;

namespace outboxd::test {
namespace {

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// An empty temp file for one output stream; returns its path and an fd open for writing.
absl::StatusOr<std::pair<std::string, int>> MakeOutputFile(absl::string_view stream) {
  std::string path = absl::StrCat("/tmp/outboxd-", stream, "-XXXXXX");
  int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError("mkostemp");
  return std::make_pair(path, fd);
}

std::string ResolveInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;  // execve fails with ENOENT, reported through the exit code 127
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

bool IsOutboxdRun(const std::vector<std::string>& argv) {
  if (argv.size() < 2 || argv[1] != "run") return false;
  const absl::string_view program = argv[0];
  const size_t slash = program.rfind('/');
  return program.substr(slash == absl::string_view::npos ? 0 : slash + 1) == "outboxd";
}

// The value `flag` (e.g. "admin_listen") gets from argv (--flag=V, -flag=V, --flag V) or from
// extra_env (OUTBOXD_FLAG), if any. The command line wins, as in outboxd.
std::optional<std::string> ListenValue(const std::vector<std::string>& argv, const EnvVars& extra_env,
                                       absl::string_view flag, absl::string_view variable) {
  std::optional<std::string> value;
  for (size_t i = 1; i < argv.size(); ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, "--")) absl::ConsumePrefix(&arg, "-");
    if (!absl::ConsumePrefix(&arg, flag)) continue;
    if (absl::ConsumePrefix(&arg, "=")) {
      value = std::string(arg);
    } else if (arg.empty() && i + 1 < argv.size()) {
      value = argv[++i];
    }
  }
  if (value) return value;
  for (const auto& [name, v] : extra_env) {
    if (name == variable) value = v;
  }
  return value;
}

}  // namespace

std::string BinaryPath(absl::string_view name) { return absl::StrCat(OUTBOXD_BIN_DIR, "/", name); }

absl::Status CheckListenFlags(const std::vector<std::string>& argv, const EnvVars& extra_env) {
  if (!IsOutboxdRun(argv)) return absl::OkStatus();
  for (const std::string& arg : argv) {
    if (arg == "--help" || arg == "--helpfull" || arg == "-h") return absl::OkStatus();
  }
  const struct {
    absl::string_view flag, variable, default_port;
  } listeners[] = {{"admin_listen", "OUTBOXD_ADMIN_LISTEN", "7700"},
                   {"metrics_listen", "OUTBOXD_METRICS_LISTEN", "9187"}};
  for (const auto& l : listeners) {
    const std::optional<std::string> value = ListenValue(argv, extra_env, l.flag, l.variable);
    const bool default_port =
        value && absl::EndsWith(*value, absl::StrCat(":", l.default_port));
    if (!value || default_port) {
      return absl::FailedPreconditionError(absl::StrCat(
          "a test must not bind outboxd's default ", l.flag, " port ", l.default_port,
          " (a developer's relay may be using it): pass --", l.flag,
          "=127.0.0.1:0 (the relay logs the address it bound), or an empty --", l.flag,
          "= to turn it off, or start it through RelayEnv / AddTestListenFlags; command: ",
          absl::StrJoin(argv, " ")));
    }
  }
  return absl::OkStatus();
}

void AddTestListenFlags(std::vector<std::string>& argv, const EnvVars& extra_env) {
  if (!IsOutboxdRun(argv)) return;
  std::vector<std::string> added;
  for (absl::string_view flag : {"admin_listen", "metrics_listen"}) {
    const std::string variable = absl::StrCat("OUTBOXD_", absl::AsciiStrToUpper(flag));
    if (!ListenValue(argv, extra_env, flag, variable)) {
      added.push_back(absl::StrCat("--", flag, "=127.0.0.1:0"));
    }
  }
  // Right after "run": a test's last argument may be a flag left without its value on purpose.
  argv.insert(argv.begin() + 2, added.begin(), added.end());
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(std::vector<std::string> argv,
                                                              EnvVars extra_env) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess::Start: empty argv");
  RETURN_IF_ERROR(CheckListenFlags(argv, extra_env));

  // Everything the child needs is built before fork: between fork and exec in a multi-threaded
  // process (librdkafka has threads) only async-signal-safe calls are allowed, so no malloc.
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::pair<std::string, std::string> kv = absl::StrSplit(*entry, absl::MaxSplits('=', 1));
    env.insert(std::move(kv));
  }
  for (auto& [name, value] : extra_env) env[name] = value;
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : env) env_strings.push_back(absl::StrCat(name, "=", value));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  const std::string program = ResolveInPath(argv[0]);
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);

  ASSIGN_OR_RETURN(auto out, MakeOutputFile("stdout"));
  absl::StatusOr<std::pair<std::string, int>> err = MakeOutputFile("stderr");
  if (!err.ok()) {
    close(out.second);
    unlink(out.first.c_str());
    return err.status();
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  const pid_t pid = fork();
  if (pid == 0) {
    // dup2 clears O_CLOEXEC on the new descriptors, so only 0, 1, 2 survive exec.
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(out.second, STDOUT_FILENO);
    dup2(err->second, STDERR_FILENO);
    execve(program.c_str(), args.data(), envp.data());
    _exit(127);
  }
  const int fork_errno = errno;
  close(out.second);
  close(err->second);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) {
    unlink(out.first.c_str());
    unlink(err->first.c_str());
    errno = fork_errno;
    return ErrnoError("fork");
  }
  return std::unique_ptr<Subprocess>(new Subprocess(pid, out.first, err->first));
}

Subprocess::~Subprocess() {
  if (!exit_code_.has_value()) {
    kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
  unlink(stdout_path_.c_str());
  unlink(stderr_path_.c_str());
}

void Subprocess::Reap(bool block) {
  if (exit_code_.has_value()) return;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return;
  if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit_code_ = 128 + WTERMSIG(status);
}

bool Subprocess::Running() {
  Reap(/*block=*/false);
  return !exit_code_.has_value();
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (!WaitFor([this] { return !Running(); }, timeout, absl::Milliseconds(10))) {
    return absl::DeadlineExceededError(absl::StrCat("process ", pid_, " still running after ",
                                                    absl::FormatDuration(timeout)));
  }
  return *exit_code_;
}

void Subprocess::Signal(int sig) {
  if (!exit_code_.has_value()) kill(pid_, sig);
}

int Subprocess::Terminate(absl::Duration timeout) {
  Signal(SIGTERM);
  absl::StatusOr<int> code = Wait(timeout);
  return code.ok() ? *code : -1;
}

std::string Subprocess::Stdout() const { return ReadFile(stdout_path_); }
std::string Subprocess::Stderr() const { return ReadFile(stderr_path_); }

}  // namespace outboxd::test
