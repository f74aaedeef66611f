// NetworkDefaults(): outboxd's keepalive and tcp_user_timeout settings are
// added only where the user's conninfo is silent, in either conninfo form
// and with several hosts.
#include "cdc/pg_connection.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace outboxd::cdc {
namespace {

using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::map<std::string, std::string> Defaults(const std::string& conninfo) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : NetworkDefaults(conninfo)) out[k] = v;
  return out;
}

const auto kAll = UnorderedElementsAre(Pair("keepalives", "1"), Pair("keepalives_idle", "10"),
                                       Pair("keepalives_interval", "5"), Pair("keepalives_count", "3"),
                                       Pair("tcp_user_timeout", "30000"));

TEST(NetworkDefaults, AllAddedWhenTheConnInfoSetsNone) {
  EXPECT_THAT(Defaults("host=db dbname=shop user=outboxd"), kAll);
  EXPECT_THAT(Defaults("postgresql://outboxd@db/shop"), kAll);
  EXPECT_THAT(Defaults(""), kAll);
  // A bare database name is not a conninfo; libpq takes it as dbname.
  EXPECT_THAT(Defaults("shop"), kAll);
}

TEST(NetworkDefaults, KeyValueSettingsWin) {
  EXPECT_THAT(Defaults("host=db keepalives_idle=99 tcp_user_timeout=0"),
              UnorderedElementsAre(Pair("keepalives", "1"), Pair("keepalives_interval", "5"),
                                   Pair("keepalives_count", "3")));
  EXPECT_THAT(Defaults("host=db keepalives=0 keepalives_idle=1 keepalives_interval=1 "
                       "keepalives_count=1 tcp_user_timeout=1"),
              IsEmpty());
}

TEST(NetworkDefaults, UriSettingsWin) {
  EXPECT_THAT(Defaults("postgresql://outboxd@db:5432/shop?keepalives=0&tcp_user_timeout=5000"),
              UnorderedElementsAre(Pair("keepalives_idle", "10"), Pair("keepalives_interval", "5"),
                                   Pair("keepalives_count", "3")));
}

TEST(NetworkDefaults, MultiHostConnInfo) {
  EXPECT_THAT(Defaults("host=a,b port=5432,5433 target_session_attrs=read-write"), kAll);
  EXPECT_THAT(Defaults("postgresql://a:5432,b:5433/shop?target_session_attrs=read-write"), kAll);
  EXPECT_THAT(Defaults("postgresql://a:5432,b:5433/shop?keepalives_count=9"),
              UnorderedElementsAre(Pair("keepalives", "1"), Pair("keepalives_idle", "10"),
                                   Pair("keepalives_interval", "5"), Pair("tcp_user_timeout", "30000")));
}

TEST(NetworkDefaults, MalformedConnInfoAddsThemAndLibpqReportsTheError) {
  // libpq rejects it with its own message when connecting; the defaults do not hide that.
  EXPECT_THAT(Defaults("host='unterminated"), kAll);
}

}  // namespace
}  // namespace outboxd::cdc
