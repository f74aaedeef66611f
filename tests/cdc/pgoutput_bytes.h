// Hand-built pgoutput (protocol 1) messages of the default outbox table, in
// the byte layout PostgreSQL's proto.c writes, for driving a Relay through a
// scripted stream (tests/cdc/fake_stream.h) with the real decoder behind it.
//
//   std::string b = pgoutput_bytes::Begin(/*final_lsn=*/0x200, /*xid=*/7);
//   std::string r = pgoutput_bytes::OutboxRelation();
//   std::string i = pgoutput_bytes::OutboxInsert("1", "order", "o-1");
//   std::string c = pgoutput_bytes::Commit(/*commit_lsn=*/0x200, /*end_lsn=*/0x230);
#ifndef OUTBOXD_TESTS_CDC_PGOUTPUT_BYTES_H_
#define OUTBOXD_TESTS_CDC_PGOUTPUT_BYTES_H_

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/strings/string_view.h"

namespace outboxd::test::pgoutput_bytes {

constexpr uint32_t kOutboxOid = 16400;

// Big-endian writer, the way PostgreSQL's pq_send* functions write.
class Writer {
 public:
  Writer& Int8(uint8_t v) { return BigEndian(v, 1); }
  Writer& Int16(int16_t v) { return BigEndian(static_cast<uint16_t>(v), 2); }
  Writer& Int32(int32_t v) { return BigEndian(static_cast<uint32_t>(v), 4); }
  Writer& Int64(int64_t v) { return BigEndian(static_cast<uint64_t>(v), 8); }
  Writer& CString(absl::string_view s) {
    data_.append(s.data(), s.size());
    return Int8(0);
  }
  // A TupleData column of kind 't'.
  Writer& Text(absl::string_view v) {
    Int8('t').Int32(static_cast<int32_t>(v.size()));
    data_.append(v.data(), v.size());
    return *this;
  }
  Writer& Null() { return Int8('n'); }
  std::string str() const { return data_; }

 private:
  Writer& BigEndian(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) data_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string data_;
};

inline std::string Begin(uint64_t final_lsn, uint32_t xid, int64_t commit_time = 0) {
  return Writer().Int8('B').Int64(static_cast<int64_t>(final_lsn)).Int64(commit_time)
      .Int32(static_cast<int32_t>(xid)).str();
}

inline std::string Commit(uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_time = 0) {
  return Writer().Int8('C').Int8(0).Int64(static_cast<int64_t>(commit_lsn))
      .Int64(static_cast<int64_t>(end_lsn)).Int64(commit_time).str();
}

// public.outbox_events with the default columns (text, payload/headers jsonb).
inline std::string OutboxRelation() {
  Writer w;
  w.Int8('R').Int32(kOutboxOid).CString("public").CString("outbox_events").Int8('d').Int16(7);
  for (const char* name :
       {"id", "aggregate_type", "aggregate_id", "event_type", "payload", "headers", "topic"}) {
    const absl::string_view n = name;
    const int32_t type = (n == "payload" || n == "headers") ? 3802 : 25;
    w.Int8(n == "id" ? 1 : 0).CString(n).Int32(type).Int32(-1);
  }
  return w.str();
}

inline std::string OutboxInsert(absl::string_view id, absl::string_view aggregate_type,
                                absl::string_view aggregate_id,
                                absl::string_view payload = "{}") {
  Writer w;
  w.Int8('I').Int32(kOutboxOid).Int8('N').Int16(7);
  w.Text(id).Text(aggregate_type).Text(aggregate_id).Text("Happened").Text(payload).Null().Null();
  return w.str();
}

}  // namespace outboxd::test::pgoutput_bytes

#endif  // OUTBOXD_TESTS_CDC_PGOUTPUT_BYTES_H_
