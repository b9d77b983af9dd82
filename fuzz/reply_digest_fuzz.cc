// Fuzz target: protocol::ReplyDigest over an arbitrary server-to-client byte
// stream (declared lengths of any size, truncated messages, error bodies
// without terminators).
//
// Properties: no crash; memory stays bounded (an error body is kept up to a
// cap, nothing else is buffered); the digest does not depend on how the
// stream is cut into pieces (the proxy feeds whole messages, batches and
// pieces of large ones alike).
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "protocol/reply_digest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const size_t seed = fdp.ConsumeIntegralInRange<size_t>(1, 64);
  const std::string stream = fdp.ConsumeRemainingBytesAsString();
  pgregion::protocol::ReplyDigest whole;
  whole.Feed(stream);
  pgregion::protocol::ReplyDigest pieces;
  size_t off = 0;
  size_t step = seed;
  while (off < stream.size()) {
    const size_t n = std::min(step, stream.size() - off);
    pieces.Feed(std::string_view(stream).substr(off, n));
    off += n;
    step = step * 7 % 61 + 1;  // varying piece sizes, 1..61
  }
  pgregion::fuzz::Check(whole.Value() == pieces.Value(), "digest depends on the chunking");
  pgregion::fuzz::Check(whole.digested() == pieces.digested(), "count depends on the chunking");
  return 0;
}
