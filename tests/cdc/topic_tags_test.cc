#include "cdc/topic_tags.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace outboxd::cdc {
namespace {

TEST(TopicTagsTest, NamesTheTopicTheSinkRoutesTo) {
  TopicTags tags("outbox.event.");
  const uint32_t order = tags.Tag("", "order");
  const uint32_t custom = tags.Tag("billing.invoices", "order");
  EXPECT_NE(order, 0u);
  EXPECT_NE(custom, order);
  EXPECT_EQ(tags.Name(order), "outbox.event.order");
  EXPECT_EQ(tags.Name(custom), "billing.invoices");
  EXPECT_EQ(tags.Name(0), "");
}

TEST(TopicTagsTest, SameTopicSameTagWhateverCameBetween) {
  TopicTags tags("p.");
  const uint32_t a = tags.Tag("", "a");
  EXPECT_EQ(tags.Tag("", "a"), a);
  const uint32_t b = tags.Tag("", "b");
  EXPECT_EQ(tags.Tag("", "a"), a);
  EXPECT_EQ(tags.Tag("", "b"), b);
  // An override that spells an aggregate type is another topic, and the reverse.
  EXPECT_NE(tags.Tag("a", ""), a);
  EXPECT_EQ(tags.Tag("p.a", ""), a);
}

TEST(TopicTagsTest, BoundedNumberOfTopics) {
  TopicTags tags("t.");
  for (size_t i = 0; i < TopicTags::kMaxTopics; ++i) {
    ASSERT_NE(tags.Tag("", absl::StrCat(i)), 0u) << i;
  }
  EXPECT_EQ(tags.Tag("", "one-too-many"), 0u);
  EXPECT_EQ(tags.Name(tags.Tag("", "0")), "t.0");
}

}  // namespace
}  // namespace outboxd::cdc
