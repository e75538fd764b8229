#pragma once
// The files of the client/server split.
//
// Key directory (hecnn keygen): keys.json (key id and the client specification the plan produced:
// layout, parameters id, scale, input shape, outputs, output factor, batch size), params.bin,
// relin.key (and galois.key when the plan needs rotations): the evaluation keys, for the server;
// and secret.key (stays with the client, mode 0600). The server reads all but secret.key.
//
// Query and result files: magic "HCNQ"/"HCNR", u16 version, u32 length + JSON header (key id,
// parameters id, input shape, the batches with their first image index and image count), then the
// ciphertexts of each batch in order, each in the checksummed ckks serialization format.
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "ckks/ckks.h"
#include "he/plan.h"
#include "he/spec.h"

namespace hecnn::he {

struct KeyInfo {
  std::string key_id;          // random, identifies one key generation
  ClientSpec spec;
  bool insecure = false;       // the parameters are above the 128-bit bound (tests only)
  std::string model;           // path the keys were made for (informational)
};

struct KeyFiles {
  std::size_t params_bytes = 0, relin_bytes = 0, galois_bytes = 0, secret_bytes = 0;
};
// Generates fresh keys for `plan` and writes the key directory (created if needed).
KeyFiles generate_keys(const HePlan& plan, const std::string& model_path, const std::string& dir);

struct ServerKeys {
  KeyInfo info;
  ckks::ContextPtr ctx;
  EvaluationKeys keys;
};
// What the server may read: never secret.key.
ServerKeys load_server_keys(const std::string& dir);

struct ClientKeys {
  KeyInfo info;
  ckks::ContextPtr ctx;
  ckks::SecretKey secret;
};
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
  std::string dataset;
  std::vector<BatchInfo> batches;
};

// Writes a header, then the caller appends batches of ciphertexts.
class StreamWriter {
 public:
  StreamWriter(const std::string& path, const StreamHeader& h, ckks::ContextPtr ctx);
  void write_batch(const std::vector<ckks::Ciphertext>& cts);
  void close();

 private:
  std::string path_;
  StreamHeader header_;
  ckks::ContextPtr ctx_;
  std::ofstream os_;
  std::size_t written_ = 0;
};

// Reads and validates the header (magic, version, kind, key id and parameters against `expect`),
// then batches one at a time, so a server holds one batch in memory.
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
  std::size_t read_ = 0;
};

}  // namespace hecnn::he
