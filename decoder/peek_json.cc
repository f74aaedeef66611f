#include "decoder/peek_json.h"

#include <type_traits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "outboxd/json.h"
#include "outboxd/pg_time.h"

namespace outboxd::decoder {
namespace {

// Appends "key":value pairs to one JSON object, in call order.
class Object {
 public:
  Object& Raw(absl::string_view key, absl::string_view json) {
    out_ += first_ ? "" : ",";
    first_ = false;
    AppendJsonString(out_, key);
    out_ += ":";
    out_.append(json.data(), json.size());
    return *this;
  }
  Object& Str(absl::string_view key, absl::string_view value) {
    std::string quoted;
    AppendJsonString(quoted, value);
    return Raw(key, quoted);
  }
  Object& Num(absl::string_view key, int64_t value) { return Raw(key, absl::StrCat(value)); }
  Object& Bool(absl::string_view key, bool value) { return Raw(key, value ? "true" : "false"); }
  Object& Lsn(absl::string_view key, outboxd::Lsn lsn) { return Str(key, lsn.ToString()); }
  Object& Time(absl::string_view key, pgoutput::PgTimestamp t) {
    return Str(key, absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ",
                                     absl::FromUnixMicros(PgToUnixMicros(t)), absl::UTCTimeZone()));
  }
  std::string Done() const { return "{" + out_ + "}"; }

 private:
  std::string out_;
  bool first_ = true;
};

std::string RelationName(const pgoutput::Relation* relation, pgoutput::Oid oid) {
  if (relation == nullptr) return absl::StrCat("oid:", oid);
  return absl::StrCat(relation->namespace_name.empty() ? "pg_catalog" : relation->namespace_name, ".",
                      relation->relation_name);
}

// {"col": "text" | null, ...}; adds columns sent as unchanged TOAST to `toast`.
std::string Tuple(const pgoutput::TupleData& tuple, const pgoutput::Relation* relation,
                  std::vector<std::string>* toast) {
  Object o;
  for (size_t i = 0; i < tuple.columns.size(); ++i) {
    const std::string name = relation != nullptr && i < relation->columns.size()
                                 ? relation->columns[i].name
                                 : absl::StrCat("$", i + 1);
    const pgoutput::Datum& d = tuple.columns[i];
    switch (d.kind) {
      case pgoutput::Datum::Kind::kNull:
        o.Raw(name, "null");
        break;
      case pgoutput::Datum::Kind::kUnchangedToast:
        if (toast != nullptr) toast->push_back(name);
        break;
      case pgoutput::Datum::Kind::kText:
        o.Str(name, d.value);
        break;
      case pgoutput::Datum::Kind::kBinary:
        o.Str(name, absl::StrCat("\\x", absl::BytesToHexString(d.value)));
        break;
    }
  }
  return o.Done();
}

std::string List(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    AppendJsonString(out, items[i]);
  }
  return out + "]";
}

}  // namespace

std::string PeekJson::Format(const Message& message, Lsn lsn) {
  Object o;
  o.Lsn("lsn", lsn).Str("type", MessageTypeName(message));
  // The xid of a row message: its own (inside a stream) or the transaction's.
  auto xid = [&](const std::optional<pgoutput::Xid>& own) {
    if (own) {
      o.Num("xid", *own);
    } else if (xid_) {
      o.Num("xid", *xid_);
    }
  };
  auto rows = [&](pgoutput::Oid oid, const pgoutput::TupleData* old_tuple,
                  const pgoutput::TupleData* new_tuple) {
    const pgoutput::Relation* relation = relations_.Find(oid);
    o.Str("relation", RelationName(relation, oid));
    std::vector<std::string> toast;
    if (old_tuple != nullptr) o.Raw("old", Tuple(*old_tuple, relation, nullptr));
    if (new_tuple != nullptr) o.Raw("new", Tuple(*new_tuple, relation, &toast));
    o.Raw("unchanged_toast", List(toast));
  };

  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, pgoutput::Begin>) {
          xid_ = m.xid;
          o.Num("xid", m.xid).Lsn("final_lsn", m.final_lsn).Time("commit_time", m.commit_time);
        } else if constexpr (std::is_same_v<T, pgoutput::Commit>) {
          xid(std::nullopt);
          o.Lsn("commit_lsn", m.commit_lsn).Lsn("end_lsn", m.end_lsn).Time("commit_time", m.commit_time);
          xid_.reset();
        } else if constexpr (std::is_same_v<T, pgoutput::Origin>) {
          o.Lsn("origin_lsn", m.commit_lsn).Str("origin", m.name);
        } else if constexpr (std::is_same_v<T, pgoutput::Relation>) {
          xid(m.xid);
          const pgoutput::Relation& r = relations_.Update(m);
          o.Str("relation", RelationName(&r, r.oid)).Num("oid", r.oid);
          o.Str("replica_identity", std::string(1, r.replica_identity));
          std::string cols = "[";
          for (size_t i = 0; i < r.columns.size(); ++i) {
            Object c;
            c.Str("name", r.columns[i].name).Num("type_oid", r.columns[i].type_oid).Bool("key", r.columns[i].part_of_key);
            absl::StrAppend(&cols, i > 0 ? "," : "", c.Done());
          }
          o.Raw("columns", cols + "]");
        } else if constexpr (std::is_same_v<T, pgoutput::Type>) {
          xid(m.xid);
          o.Num("oid", m.oid).Str("name", absl::StrCat(m.namespace_name, ".", m.type_name));
        } else if constexpr (std::is_same_v<T, pgoutput::Insert>) {
          xid(m.xid);
          rows(m.relation_oid, nullptr, &m.new_tuple);
        } else if constexpr (std::is_same_v<T, pgoutput::Update>) {
          xid(m.xid);
          rows(m.relation_oid, m.old_tuple ? &*m.old_tuple : nullptr, &m.new_tuple);
        } else if constexpr (std::is_same_v<T, pgoutput::Delete>) {
          xid(m.xid);
          rows(m.relation_oid, &m.old_tuple, nullptr);
        } else if constexpr (std::is_same_v<T, pgoutput::Truncate>) {
          xid(m.xid);
          std::vector<std::string> names;
          for (pgoutput::Oid oid : m.relation_oids) names.push_back(RelationName(relations_.Find(oid), oid));
          o.Raw("relations", List(names)).Bool("cascade", m.options & 1).Bool("restart_identity", m.options & 2);
        } else if constexpr (std::is_same_v<T, pgoutput::LogicalMessage>) {
          if (m.transactional) xid(m.xid);
          o.Str("prefix", m.prefix).Bool("transactional", m.transactional).Str("content", m.content);
        } else if constexpr (std::is_same_v<T, pgoutput::StreamStart>) {
          o.Num("xid", m.xid).Bool("first_segment", m.first_segment);
        } else if constexpr (std::is_same_v<T, pgoutput::StreamStop>) {
        } else if constexpr (std::is_same_v<T, pgoutput::StreamCommit>) {
          o.Num("xid", m.xid).Lsn("commit_lsn", m.commit_lsn).Lsn("end_lsn", m.end_lsn).Time("commit_time", m.commit_time);
        } else if constexpr (std::is_same_v<T, pgoutput::StreamAbort>) {
          o.Num("xid", m.xid).Num("subxid", m.subxid);
          if (m.abort_lsn) o.Lsn("abort_lsn", *m.abort_lsn);
          if (m.abort_time) o.Time("abort_time", *m.abort_time);
        } else if constexpr (std::is_same_v<T, pgoutput::RollbackPrepared>) {
          o.Num("xid", m.xid).Str("gid", m.gid).Lsn("prepare_end_lsn", m.prepare_end_lsn)
              .Lsn("rollback_end_lsn", m.rollback_end_lsn).Time("rollback_time", m.rollback_time);
        } else if constexpr (std::is_same_v<T, pgoutput::CommitPrepared>) {
          o.Num("xid", m.xid).Str("gid", m.gid).Lsn("commit_lsn", m.commit_lsn).Lsn("end_lsn", m.end_lsn)
              .Time("commit_time", m.commit_time);
        } else {  // BeginPrepare, Prepare, StreamPrepare share their layout
          o.Num("xid", m.xid).Str("gid", m.gid).Lsn("prepare_lsn", m.prepare_lsn).Lsn("end_lsn", m.end_lsn)
              .Time("prepare_time", m.prepare_time);
        }
      },
      message);
  return o.Done();
}

}  // namespace outboxd::decoder
