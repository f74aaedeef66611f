// PeekJson: one pgoutput message as a JSON object, for `outboxd peek`.
//
//   PeekJson json;                                  // keeps the relation cache
//   std::string line = json.Format(message, lsn);   // {"lsn":"0/16B3748","type":"insert",...}
//
// Fields: "lsn" (X/Y), "type" (MessageTypeName), "xid" where known; row
// messages carry "relation" (schema.table), "new"/"old" objects mapping column
// name to the value as PostgreSQL prints it (a JSON string; null for NULL)
// and "unchanged_toast" naming columns whose value was not sent; logical
// messages carry "prefix", "transactional" and "content"; the others carry
// their positions, times and names. Pure: no I/O.
//
// Thread: not thread-safe (it follows Relation messages and the current xid).
#ifndef OUTBOXD_DECODER_PEEK_JSON_H_
#define OUTBOXD_DECODER_PEEK_JSON_H_

#include <string>

#include "decoder/pgoutput.h"
#include "decoder/relation_cache.h"
#include "outboxd/lsn.h"

namespace outboxd::decoder {

class PeekJson {
 public:
  std::string Format(const Message& message, Lsn lsn);

 private:
  RelationCache relations_;
  std::optional<pgoutput::Xid> xid_;  // of the transaction being sent
};

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_PEEK_JSON_H_
