// Decoder throughput: PgOutputParser on outbox INSERT messages, and the
// outbox mapping (OutboxDecoder::Decode) that turns one into an OutboxEvent.
// Target (issue 5): >= 5 million insert messages/s and >= 500 MB/s on one core.
//
//   build/bin/decoder_bench --benchmark_min_time=1
//
// items_per_second = messages/s; bytes_per_second = pgoutput bytes/s.
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <variant>

#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "decoder/outbox_decoder.h"
#include "decoder/pgoutput.h"

namespace outboxd::decoder {
namespace {

// Big-endian writer, as PostgreSQL's pq_send* functions write.
class Bytes {
 public:
  Bytes& Int8(uint8_t v) { return BigEndian(v, 1); }
  Bytes& Int16(int16_t v) { return BigEndian(static_cast<uint16_t>(v), 2); }
  Bytes& Int32(int32_t v) { return BigEndian(static_cast<uint32_t>(v), 4); }
  Bytes& CString(absl::string_view s) {
    data_.append(s.data(), s.size());
    return Int8(0);
  }
  Bytes& Text(absl::string_view v) {
    Int8('t').Int32(static_cast<int32_t>(v.size()));
    data_.append(v.data(), v.size());
    return *this;
  }
  Bytes& Null() { return Int8('n'); }
  const std::string& str() const { return data_; }

 private:
  Bytes& BigEndian(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) data_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string data_;
};

constexpr uint32_t kOutboxOid = 16390;

// The Relation of DESIGN.md's default outbox table.
std::string OutboxRelation() {
  Bytes b;
  b.Int8('R').Int32(kOutboxOid).CString("public").CString("outbox_events").Int8('d').Int16(8);
  const struct {
    const char* name;
    int32_t oid;
  } cols[] = {{"id", 20},         {"aggregate_type", 25}, {"aggregate_id", 25},
              {"event_type", 25}, {"payload", 3802},      {"headers", 3802},
              {"topic", 25},      {"created_at", 1184}};
  bool key = true;
  for (const auto& c : cols) {
    b.Int8(key ? 1 : 0).CString(c.name).Int32(c.oid).Int32(-1);
    key = false;
  }
  return b.str();
}

// The headers column of a row with `entries` headers (0: NULL): W3C trace
// context first, then the kind of metadata services add.
std::string HeadersJson(int entries) {
  std::string json = R"({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")";
  if (entries >= 2) json += R"(, "tracestate": "rojo=00f067aa0ba902b7")";
  if (entries >= 3) json += R"(, "source": "order-service/2.14.1")";
  return json + "}";
}

// A realistic outbox row: an order event with a ~300 byte JSON payload,
// `header_entries` headers (0: NULL headers), no topic override. About 520
// bytes with one header.
std::string OutboxInsert(int header_entries = 1) {
  Bytes b;
  b.Int8('I').Int32(kOutboxOid).Int8('N').Int16(8);
  b.Text("123456789")
      .Text("order")
      .Text("order-6f1c2a9e-4b7d-4f0e-9a51-2c3d4e5f6a7b")
      .Text("OrderPlaced")
      .Text(R"({"items": [{"qty": 2, "sku": "SKU-000123", "price": 12.5}, )"
            R"({"qty": 1, "sku": "SKU-004567", "price": 99.99}], "total": 124.99, )"
            R"("currency": "EUR", "customer": {"id": "cust-8812", "tier": "gold"}, )"
            R"("shipping": {"city": "Lyon", "country": "FR", "method": "express"}, )"
            R"("placed_at": "2026-11-22T06:00:00.123456+00:00"})");
  if (header_entries > 0) {
    b.Text(HeadersJson(header_entries));
  } else {
    b.Null();
  }
  b.Null().Text("2026-11-22 06:00:00.123456+00");
  return b.str();
}

void BM_ParseOutboxInsert(benchmark::State& state) {
  const std::string msg = OutboxInsert();
  PgOutputParser parser(4);
  for (auto _ : state) {
    absl::StatusOr<Message> m = parser.Parse(msg);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(msg.size()));
  state.SetLabel(std::to_string(msg.size()) + " B/message");
}
BENCHMARK(BM_ParseOutboxInsert);

// The insert PostgreSQL 15 really sent (tests/fixtures/pgoutput/03_insert.bin).
void BM_ParseCapturedInsert(benchmark::State& state) {
  std::ifstream in(OUTBOXD_FIXTURE_DIR "/pgoutput/03_insert.bin", std::ios::binary);
  const std::string msg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (msg.empty()) {
    state.SkipWithError("fixture missing");
    return;
  }
  PgOutputParser parser(1);
  for (auto _ : state) {
    absl::StatusOr<Message> m = parser.Parse(msg);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(msg.size()));
  state.SetLabel(std::to_string(msg.size()) + " B/message");
}
BENCHMARK(BM_ParseCapturedInsert);

// The outbox mapping alone: a parsed insert → OutboxEvent. Arg: entries of the
// row's headers JSON object; 0: headers NULL. Target (issue 10): <= 1 µs with
// 3 entries.
void BM_OutboxDecode(benchmark::State& state) {
  const std::string rel_bytes = OutboxRelation();
  const std::string msg = OutboxInsert(static_cast<int>(state.range(0)));
  PgOutputParser parser(1);
  OutboxDecoder decoder(OutboxTable{}, OutboxColumns{});
  (void)decoder.Decode(*parser.Parse(rel_bytes), Lsn(0x100));
  const Message insert = *parser.Parse(msg);
  for (auto _ : state) {
    auto ev = decoder.Decode(insert, Lsn(0x200));
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OutboxDecode)->Arg(3)->Arg(1)->Arg(0);

// The same into one kept DecodedEvent, as the relay decodes.
void BM_OutboxDecodeKept(benchmark::State& state) {
  const std::string rel_bytes = OutboxRelation();
  const std::string msg = OutboxInsert(static_cast<int>(state.range(0)));
  PgOutputParser parser(1);
  OutboxDecoder decoder(OutboxTable{}, OutboxColumns{});
  (void)decoder.Decode(*parser.Parse(rel_bytes), Lsn(0x100));
  const Message insert = *parser.Parse(msg);
  DecodedEvent event;
  for (auto _ : state) {
    auto ok = decoder.Decode(insert, Lsn(0x200), &event);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OutboxDecodeKept)->Arg(3)->Arg(0);

// A table-less event (--source=messages): pg_logical_emit_message content
// with a numeric id, the same payload and 3 headers, into a kept DecodedEvent.
void BM_MessageDecode(benchmark::State& state) {
  const std::string content =
      R"({"id": 123456789, "aggregate_type": "order", )"
      R"("aggregate_id": "order-6f1c2a9e-4b7d-4f0e-9a51-2c3d4e5f6a7b", "event_type": "OrderPlaced", )"
      R"("payload": {"items": [{"qty": 2, "sku": "SKU-000123", "price": 12.5}, )"
      R"({"qty": 1, "sku": "SKU-004567", "price": 99.99}], "total": 124.99, )"
      R"("currency": "EUR", "customer": {"id": "cust-8812", "tier": "gold"}, )"
      R"("shipping": {"city": "Lyon", "country": "FR", "method": "express"}, )"
      R"("placed_at": "2026-11-22T06:00:00.123456+00:00"}, "headers": )" +
      HeadersJson(3) + "}";
  OutboxSource source;
  source.messages = true;
  OutboxDecoder decoder(OutboxTable{}, OutboxColumns{}, source);
  pgoutput::LogicalMessage message;
  message.transactional = true;
  message.lsn = Lsn(0x300);
  message.prefix = "outbox";
  message.content = content;
  const Message m = message;
  DecodedEvent event;
  for (auto _ : state) {
    auto ok = decoder.Decode(m, Lsn(0x300), &event);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(content.size()));
}
BENCHMARK(BM_MessageDecode);

// Both: bytes of an insert → OutboxEvent, what the stream thread does per
// event.
void BM_ParseAndDecode(benchmark::State& state) {
  const std::string rel_bytes = OutboxRelation();
  const std::string msg = OutboxInsert(static_cast<int>(state.range(0)));
  PgOutputParser parser(1);
  OutboxDecoder decoder(OutboxTable{}, OutboxColumns{});
  (void)decoder.Decode(*parser.Parse(rel_bytes), Lsn(0x100));
  for (auto _ : state) {
    absl::StatusOr<Message> m = parser.Parse(msg);
    auto ev = decoder.Decode(*m, Lsn(0x200));
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(msg.size()));
}
BENCHMARK(BM_ParseAndDecode)->Arg(1)->Arg(0);

}  // namespace
}  // namespace outboxd::decoder
