// Package batch parses, validates and rewrites Kafka record batches (magic
// v2) and implements the record compression codecs. It does no I/O: every
// function works on a byte slice, so the produce path, the log recovery code
// and the fuzz tests share one implementation.
//
// # Record batch v2 layout
//
// All integers are big-endian. Offsets in the table are byte positions from
// the start of the batch; the CRC covers bytes 21 up to the end of the batch,
// so the broker may rewrite BaseOffset and PartitionLeaderEpoch without
// recomputing it.
//
//	 0  BaseOffset            int64
//	 8  BatchLength           int32  bytes that follow this field (batch size - 12)
//	12  PartitionLeaderEpoch  int32
//	16  Magic                 int8   always 2
//	17  CRC                   uint32 CRC-32C (Castagnoli) of bytes 21..end
//	21  Attributes            int16  bits 0-2 codec, 3 timestamp type (1 = log
//	                                 append time), 4 transactional, 5 control,
//	                                 6 has delete horizon
//	23  LastOffsetDelta       int32
//	27  FirstTimestamp        int64  (BaseTimestamp)
//	35  MaxTimestamp          int64
//	43  ProducerID            int64
//	51  ProducerEpoch         int16
//	53  BaseSequence          int32
//	57  NumRecords            int32
//	61  Records               NumRecords records, compressed as a whole when
//	                          the codec is not none
//
// # Record layout
//
// Each record is a zig-zag varint length followed by that many bytes:
//
//	attributes      int8    (unused)
//	timestampDelta  varlong from FirstTimestamp
//	offsetDelta     varint  from BaseOffset
//	keyLength       varint  -1 = null key
//	key             bytes
//	valueLength     varint  -1 = null value
//	value           bytes
//	headerCount     varint
//	headers         headerCount × (keyLength varint, key, valueLength varint
//	                (-1 = null), value)
//
// # Compression
//
// Codec 1 is gzip, 2 snappy (raw blocks, or the xerial framing written by the
// Java client: an 8-byte magic, two int32 versions, then int32
// length-prefixed raw blocks), 3 LZ4 frame format, 4 zstd frames. The whole
// records section is compressed as one stream; the 61-byte header stays
// uncompressed.
package batch
