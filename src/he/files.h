#pragma once
// The files of the client/server split.
//
// Key directory (hecnn keygen): keys.json (key id and the client specification the plan produced:
// layout, parameters id, scale, input shape, outputs, output factor, batch size), params.bin,
// relin.key (and galois.key when the plan needs rotations): the evaluation keys, for the server;
// and secret.key (stays with the client, mode 0600). The server reads all but secret.key.
// The key id of keys.json is the key-set id that the key generation stamped into secret.key,
// relin.key and galois.key (ckks format version 2): a key file from another key generation, even
// with the same parameters, is refused with an error naming both files. Every file is written
// atomically (common/files.h), secret.key with mode 0600 from its creation.
//
// Query and result files (version 2):
//   magic "HCNQ"/"HCNR" | u16 version | u32 length | JSON header | 32-byte BLAKE2b of everything
//   before it | the ciphertexts of each batch in order (the checksummed ckks format) | 32-byte
//   BLAKE2b of everything before it.
// The header holds the kind, key id, parameters id, shape, ciphertexts per batch, the dataset the
// images came from (name and test-set size) and the batches (first image index and image count,
// contiguous). The reader checks the header checksum before parsing it and the whole file's
// checksum before handing out any batch, so an edited header (shifted indices, dropped images) or
// reordered ciphertexts are refused, not silently misattributed. The checksums detect accidents and
// edits, not a forger who recomputes them: nothing here is signed.
#include <cstdint>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "ckks/ckks.h"
#include "ckks/serialization.h"
#include "common/files.h"
#include "he/keys.h"
#include "he/plan.h"
#include "he/spec.h"

namespace hecnn::he {

// Generates fresh keys for `plan` (KeyBundle::generate) and writes them into the key directory
// `dir` (KeyBundle::save_directory: created with mode 0700 if missing; an existing one must belong
// to this user, not be writable by everyone, and be empty unless `replace`; symbolic links at the
// key files' names are refused, even with `replace`).
KeyFiles generate_keys(const HePlan& plan, const std::string& model_path, const std::string& dir, bool replace = false);
// The same from what a plan gives a client, without the model (a remote client: the server's
// ListModels answers the parameters, the specification and the keys it needs). Throws hecnn::Error
// unless spec is for params.
KeyFiles generate_keys(const ckks::CkksParameters& params, const KeyRequirements& need, const ClientSpec& spec,
                       const std::string& model_name, const std::string& dir, bool replace = false);

struct ServerKeys {
  KeyInfo info;
  ckks::ContextPtr ctx;
  EvaluationKeys keys;
};
// What the server may read: never secret.key (KeyBundle::load_directory, SecretPart::Ignore).
ServerKeys load_server_keys(const std::string& dir);
// Reads keys.json alone (key id, specification, insecure flag).
KeyInfo read_key_info(const std::string& dir);

struct ClientKeys {
  KeyInfo info;
  ckks::ContextPtr ctx;
  ckks::SecretKey secret;
};
// secret.key must not be accessible by other users; the buffers that held it are wiped.
ClientKeys load_client_keys(const std::string& dir);

struct BatchInfo {
  std::size_t first = 0, count = 0;  // dataset index of the first image, number of images
};

struct StreamHeader {
  std::string kind;  // "query" or "result"
  std::string key_id;
  std::uint64_t params_id = 0;
  nn::Shape shape;                   // query: image shape; result: {outputs, 1, 1}
  std::size_t per_batch = 0;         // ciphertexts per batch
  std::string dataset;               // name of the dataset the images came from ("" if none)
  std::size_t dataset_size = 0;      // images in its test split at encryption (0: unknown)
  std::vector<BatchInfo> batches;    // contiguous
};

// Throws unless the header's images come from `dataset`'s test split of `size` images: same name,
// same size, every index below it. `path` names the file in the message. check_dataset_name
// checks the name alone (before the dataset is loaded).
void check_dataset_name(const StreamHeader& h, const std::string& path, const std::string& dataset);
void check_dataset(const StreamHeader& h, const std::string& path, const std::string& dataset, std::size_t size);

// Writes a header, then the caller appends batches of ciphertexts. The file appears under its name
// only at close() (atomic write); destroyed before, it leaves nothing behind.
class StreamWriter {
 public:
  StreamWriter(const std::string& path, const StreamHeader& h, ckks::ContextPtr ctx);
  ~StreamWriter();
  void write_batch(const std::vector<ckks::Ciphertext>& cts);
  void close();

 private:
  class HashingBuf;
  std::string path_;
  StreamHeader header_;
  ckks::ContextPtr ctx_;
  std::unique_ptr<AtomicFile> file_;
  std::unique_ptr<ckks::Checksum> sum_;
  std::unique_ptr<HashingBuf> buf_;
  std::unique_ptr<std::ostream> os_;
  std::size_t written_ = 0;
};

// Reads and validates the header (magic, version, checksums, kind, key id and parameters against
// `keys`, batches against the batch size), then batches one at a time, so a server holds one batch
// in memory.
class StreamReader {
 public:
  StreamReader(const std::string& path, const std::string& kind, const KeyInfo& keys, ckks::ContextPtr ctx);
  const StreamHeader& header() const { return header_; }
  std::vector<ckks::Ciphertext> read_batch();
  // Throws unless every batch was read and nothing follows.
  void finish();

 private:
  std::string path_;
  StreamHeader header_;
  ckks::ContextPtr ctx_;
  std::ifstream is_;
  std::uint64_t data_end_ = 0;  // offset of the trailing checksum
  std::size_t read_ = 0;
};

}  // namespace hecnn::he
