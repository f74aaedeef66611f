// Polling with a deadline, the tests' replacement for sleeping as synchronisation.
//
//   ASSERT_TRUE(WaitFor([&] { return relay->Stdout().find("streaming") != npos; },
//                       absl::Seconds(10)));
#ifndef OUTBOXD_TESTS_SUPPORT_WAIT_H_
#define OUTBOXD_TESTS_SUPPORT_WAIT_H_

#include <algorithm>
#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace outboxd::test {

// Evaluates `condition` every `step` until it returns true (-> true) or `deadline` has passed
// (-> false). The condition is always evaluated at least once, and once more at the deadline,
// so a condition that became true during the last step is not reported as a timeout.
inline bool WaitFor(std::function<bool()> condition, absl::Duration deadline,
                    absl::Duration step = absl::Milliseconds(20)) {
  const absl::Time end = absl::Now() + deadline;
  while (true) {
    if (condition()) return true;
    const absl::Time now = absl::Now();
    if (now >= end) return false;
    absl::SleepFor(std::min(step, end - now));
  }
}

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_WAIT_H_
