// Bad input: one clear message with the fix, non-zero exit, within seconds.
#include "gtest/gtest.h"
