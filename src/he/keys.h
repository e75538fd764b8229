#pragma once
// A client's keys in memory: the parameters, keys.json's content (key id, client specification),
// the public key, the evaluation keys (relinearization, Galois) and, on the client only, the secret
// key. Files (a key directory), gRPC and Python carry a bundle's bytes; the bundle is where the
// keys live.
//
// Bytes (format version 1), every object in the checksummed ckks format (ckks/serialization.h):
//   magic "HCNB" | u16 version | u32 keys.json length | u8 part count | per part: u8 kind, u64 bytes
//   | keys.json | 32-byte BLAKE2b of everything before it | the parts in the order of the table
// Kinds: 1 params.bin, 2 public.key, 3 relin.key, 4 galois.key, 5 secret.key, 6 bootstrap.key
// (bootstrapping's encapsulation keys, ckks::BootstrapSwitchKeys); params.bin is
// required, each kind appears at most once, in increasing order. Every length is checked against
// the reader's limit before anything is allocated, keys.json against 1 MiB; a key of another key
// generation than keys.json's key id, or parameters other than the specification's, are refused
// with a message naming the part.
//
// A key directory (hecnn keygen --out DIR) holds the same parts as files: keys.json, params.bin,
// public.key, relin.key, galois.key (those the plan needs) and secret.key (mode 0600). It is one
// way to store a bundle: every file written atomically, the directory private (see save_directory).
//
// The secret key is wiped when the bundle is freed (ckks::SecretKey), and every buffer that held
// its bytes is wiped too. public_bundle() and public_bytes() never contain it: that is what a
// client gives a server.
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckks/ckks.h"
#include "common/files.h"
#include "he/plan.h"
#include "he/spec.h"

namespace hecnn::he {

struct KeyInfo {
  std::string key_id;          // random, identifies one key generation: key_set in hexadecimal
  ckks::KeySetId key_set{};
  ClientSpec spec;
  bool insecure = false;       // the parameters are above the 128-bit bound (tests only)
  std::string model;           // path or name the keys were made for (informational)
};

// keys.json's content; `where` names it in messages. Throws hecnn::Error on anything malformed.
KeyInfo parse_key_info(const std::string& text, const std::string& where);

struct KeyFiles {
  std::size_t params_bytes = 0, public_bytes = 0, relin_bytes = 0, galois_bytes = 0, secret_bytes = 0, bootstrap_bytes = 0;
};

// Whether a reader takes a secret key.
enum class SecretPart {
  Refuse,    // a server: a bundle or directory holding one is refused (never read)
  Ignore,    // a directory's secret.key is not opened (a server reading a client's directory)
  Optional,
  Require,   // a client that decrypts
};

struct KeyReadOptions {
  SecretPart secret = SecretPart::Optional;
  std::uint64_t max_bytes = std::uint64_t{64} << 30;  // all parts together (bytes and streams)
};

class KeyBundle {
 public:
  // Fresh keys (secret, public, and the evaluation keys `need` lists) for `params`. Throws
  // hecnn::Error unless `spec` is for `params`.
  static KeyBundle generate(const ckks::CkksParameters& params, const KeyRequirements& need, const ClientSpec& spec,
                            const std::string& model);
  static KeyBundle generate(const HePlan& plan, const std::string& model);

  // The bytes of the format above (with the secret key when the bundle has one: wiped when freed).
  std::unique_ptr<SecretBuffer> to_bytes() const;
  // The bytes of public_bundle(): what goes to a server.
  std::string public_bytes() const;
  void save(std::ostream& os) const;
  // Throws hecnn::Error (naming `where`) on anything but one whole bundle within the options; a
  // stream is read up to the bundle's end.
  static KeyBundle from_bytes(const char* data, std::size_t size, const KeyReadOptions& options = {},
                              const std::string& where = "key bundle");
  static KeyBundle load(std::istream& is, const KeyReadOptions& options = {}, const std::string& where = "key bundle");

  // Writes the key directory: created (mode 0700) if missing; an existing one must belong to this
  // user, not be writable by everyone, and be empty unless `replace`. Symbolic links at the key
  // files' names are refused, even with `replace`; with `replace`, key files this bundle does not
  // hold are removed. secret.key (when the bundle has one) is written with mode 0600.
  KeyFiles save_directory(const std::string& dir, bool replace = false) const;
  // Reads a key directory (secret.key only if the options take it: it must then not be accessible
  // by other users). max_bytes bounds every file.
  static KeyBundle load_directory(const std::string& dir, const KeyReadOptions& options = {});

  // The same keys without the secret key.
  KeyBundle public_bundle() const;

  const KeyInfo& info() const { return info_; }
  const ckks::ContextPtr& context() const { return ctx_; }
  const ckks::CkksParameters& params() const { return ctx_->params(); }
  const EvaluationKeys& evaluation_keys() const { return eval_; }
  // The evaluation keys, moved out (the bundle keeps its information and parameters).
  EvaluationKeys take_evaluation_keys() { return std::move(eval_); }
  const std::optional<ckks::PublicKey>& public_key() const { return public_; }
  bool has_secret() const { return secret_.has_value(); }
  // Throws hecnn::Error when the bundle has none.
  const ckks::SecretKey& secret_key() const;
  // keys.json as keygen writes it.
  std::string keys_json() const;

 private:
  friend class KeyBundleReader;
  KeyBundle() = default;
  KeyInfo info_;
  ckks::ContextPtr ctx_;
  std::optional<ckks::PublicKey> public_;
  EvaluationKeys eval_;
  std::optional<ckks::SecretKey> secret_;
};

// The names of the files of a key directory.
const std::vector<std::string>& key_file_names();

}  // namespace hecnn::he
