#include "ckks/serialization.h"

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <istream>
#include <ostream>
#include <set>
#include <vector>

#include "ckks/encryptor.h"
#include "common/error.h"
#include "common/files.h"
#include "ckks/keygen.h"

namespace hecnn::ckks {

static_assert(std::endian::native == std::endian::little, "serialization assumes a little-endian host");

namespace {

constexpr char kMagic[4] = {'H', 'C', 'K', 'S'};
constexpr std::size_t kHashBytes = 32;
constexpr std::size_t kHeaderBytes = 4 + 2 + 2 + 8 + 8;

// Writes (or, with no stream, only counts) bytes, hashing everything written.
class Writer {
 public:
  explicit Writer(std::ostream* os) : os_(os) {
    if (os_) crypto_generichash_init(&st_, nullptr, 0, kHashBytes);
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() { sodium_memzero(&st_, sizeof st_); }  // it hashed the payload (a secret key's too)
  void bytes(const void* p, std::size_t n) {
    count_ += n;
    if (!os_) return;
    crypto_generichash_update(&st_, static_cast<const unsigned char*>(p), n);
    os_->write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  }
  template <typename T>
  void put(T v) {
    bytes(&v, sizeof(T));
  }
  void words(const u64* p, std::size_t n) { bytes(p, n * sizeof(u64)); }
  std::size_t count() const { return count_; }
  void finish() {
    unsigned char h[kHashBytes];
    crypto_generichash_final(&st_, h, kHashBytes);
    os_->write(reinterpret_cast<const char*>(h), kHashBytes);
    if (!*os_) throw Error("write failed (disk full or stream closed?)");
  }

 private:
  std::ostream* os_;
  crypto_generichash_state st_{};
  std::size_t count_ = 0;
};

class Reader {
 public:
  Reader(std::istream& is, std::string what) : is_(is), what_(std::move(what)) {
    crypto_generichash_init(&st_, nullptr, 0, kHashBytes);
    // On seekable streams, learn how many bytes remain so a declared length can be checked
    // against the data actually present before anything is allocated.
    const auto pos = is_.tellg();
    if (pos != std::streampos(-1)) {
      is_.seekg(0, std::ios::end);
      const auto end = is_.tellg();
      is_.seekg(pos);
      if (end != std::streampos(-1) && end >= pos) available_ = static_cast<std::uint64_t>(end - pos);
    }
    is_.clear();
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() { sodium_memzero(&st_, sizeof st_); }
  const std::string& what() const { return what_; }
  // Fails unless n more payload bytes are declared (call before allocating for them).
  void require(std::uint64_t n) const {
    if (consumed_ + n > limit_) throw Error(what_ + " is corrupted: its fields run past its declared length");
  }
  // Called after the header: the payload may span `payload` more bytes.
  void start_payload(std::uint64_t payload) {
    if (available_ != ~0ULL && consumed_ + payload + kHashBytes > available_) throw Error(what_ + " is truncated");
    payload_start_ = consumed_;
    limit_ = consumed_ + payload;
  }
  void bytes(void* p, std::size_t n) {
    if (consumed_ + n > limit_) throw Error(what_ + " is corrupted: its fields run past its declared length");
    is_.read(static_cast<char*>(p), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(is_.gcount()) != n) throw Error(what_ + " is truncated");
    crypto_generichash_update(&st_, static_cast<unsigned char*>(p), n);
    consumed_ += n;
  }
  template <typename T>
  T get() {
    T v;
    bytes(&v, sizeof(T));
    return v;
  }
  // Reads n words, each checked to be below q.
  void words_mod(u64* p, std::size_t n, u64 q) {
    bytes(p, n * sizeof(u64));
    for (std::size_t i = 0; i < n; ++i) {
      if (p[i] >= q) throw Error(what_ + " is corrupted: a coefficient is not reduced modulo its prime");
    }
  }
  std::uint64_t consumed() const { return consumed_; }
  void set_header_id(std::uint64_t id) { header_id_ = id; }
  std::uint64_t header_id() const { return header_id_; }
  void finish(std::uint64_t declared) {
    if (consumed_ - payload_start_ != declared) throw Error(what_ + " is corrupted: payload length does not match its header");
    unsigned char expect[kHashBytes], got[kHashBytes];
    crypto_generichash_final(&st_, expect, kHashBytes);
    is_.read(reinterpret_cast<char*>(got), kHashBytes);
    if (static_cast<std::size_t>(is_.gcount()) != kHashBytes) throw Error(what_ + " is truncated (checksum missing)");
    if (sodium_memcmp(expect, got, kHashBytes) != 0) throw Error(what_ + " is corrupted: checksum mismatch");
  }

 private:
  std::istream& is_;
  std::string what_;
  crypto_generichash_state st_{};
  std::uint64_t consumed_ = 0;
  std::uint64_t limit_ = ~0ULL;
  std::uint64_t header_id_ = 0;
  std::uint64_t payload_start_ = 0;
  std::uint64_t available_ = ~0ULL;  // unknown for unseekable streams
};

void ensure_sodium() {
  if (sodium_init() < 0) throw Error("libsodium failed to initialize");
}

// Key objects are written as version 2, with their key-set id first; the others as version 1.
template <typename Body>
void write_object(std::ostream& os, ObjectType type, std::uint64_t params_id, const Body& body,
                  const KeySetId* key_set = nullptr) {
  ensure_sodium();
  auto all = [&](Writer& w) {
    if (key_set) w.bytes(key_set->data(), key_set->size());
    body(w);
  };
  Writer counter(nullptr);
  all(counter);
  Writer w(&os);
  w.bytes(kMagic, 4);
  w.put<std::uint16_t>(key_set ? kKeyFormatVersion : kFormatVersion);
  w.put<std::uint16_t>(static_cast<std::uint16_t>(type));
  w.put<std::uint64_t>(params_id);
  w.put<std::uint64_t>(counter.count());
  all(w);
  w.finish();
}

// Reads and checks a header; returns the declared payload length. For key objects `key_set` receives
// the key-set id (version 2) or zeros (version 1).
std::uint64_t read_header(Reader& r, ObjectType expected, const CkksParameters* params, std::uint64_t max_payload,
                          KeySetId* key_set = nullptr, std::uint16_t* version_out = nullptr) {
  const std::string what = object_type_name(expected);
  char magic[4];
  r.bytes(magic, 4);
  if (std::memcmp(magic, kMagic, 4) != 0) throw Error("not a hecnn file: bad magic number (expected a " + what + ")");
  const auto version = r.get<std::uint16_t>();
  if (version < 1 || version > kKeyFormatVersion) {
    throw Error("unsupported format version " + std::to_string(version) + " (this build reads versions 1 to " +
                std::to_string(kKeyFormatVersion) + ")");
  }
  if (version_out) *version_out = version;
  const auto type = static_cast<ObjectType>(r.get<std::uint16_t>());
  if (type != expected) throw Error("file holds a " + object_type_name(type) + ", expected a " + what);
  const auto id = r.get<std::uint64_t>();
  r.set_header_id(id);
  if (params && id != params->id()) {
    throw Error(what + " was made for other encryption parameters (parameter id mismatch)");
  }
  const auto len = r.get<std::uint64_t>();
  if (len > max_payload) {
    throw Error(what + " declares " + std::to_string(len) + " bytes, more than these parameters allow (" +
                std::to_string(max_payload) + "); the file is corrupted or oversized");
  }
  r.start_payload(len);
  if (key_set) {
    key_set->fill(0);
    if (version >= 2) r.bytes(key_set->data(), key_set->size());
  }
  return len;
}

void check_limbs_mod(Reader& r, const CkksContext& ctx, u64* data, const std::vector<std::size_t>& key_indices) {
  for (std::size_t j = 0; j < key_indices.size(); ++j) {
    r.words_mod(data + j * ctx.n(), ctx.n(), ctx.modulus(key_indices[j]).value);
  }
}

std::vector<std::size_t> range_indices(std::size_t count) {
  std::vector<std::size_t> v(count);
  for (std::size_t i = 0; i < count; ++i) v[i] = i;
  return v;
}

void write_switch_key(Writer& w, const CkksContext& ctx, const KeySwitchKey& k, bool seeded) {
  const bool use_seed = seeded && k.seed.has_value();
  w.put<std::uint32_t>(static_cast<std::uint32_t>(k.b.size()));
  w.put<std::uint8_t>(use_seed ? 1 : 0);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(k.chain ? k.chain : ctx.chain_size()));  // version 3
  for (std::size_t d = 0; d < k.b.size(); ++d) {
    w.words(k.b[d].data(), k.b[d].size());
    if (!use_seed) w.words(k.a[d].data(), k.a[d].size());
  }
  if (use_seed) w.bytes(k.seed->data(), k.seed->size());
}

KeySwitchKey read_switch_key(Reader& r, const CkksContext& ctx, const std::string& what, std::uint16_t version) {
  const std::size_t digits = r.get<std::uint32_t>();
  const auto seeded = r.get<std::uint8_t>();
  if (seeded > 1) throw Error(what + " is corrupted: bad seed flag");
  const std::size_t L = ctx.chain_size(), K = ctx.special_count();
  // Version 3: the chain primes the key covers (1 to L), with the digits of that level.
  const std::size_t chain = version >= 3 ? r.get<std::uint32_t>() : L;
  if (chain < 1 || chain > L) throw Error(what + " is corrupted: it covers " + std::to_string(chain) + " chain primes of " + std::to_string(L));
  const std::size_t want = ctx.key_switch(chain - 1).digit_count;
  if (digits != want) {
    throw Error(what + " has " + std::to_string(digits) + " digits; the parameters use " + std::to_string(want) +
                (chain < L ? " at its level" : ""));
  }
  const std::size_t total = chain + K;
  const std::uint64_t limb_bytes = total * ctx.n() * 8;
  r.require(digits * limb_bytes * (seeded ? 1 : 2) + (seeded ? 32 : 0));
  // The key's limbs: chain primes 0..chain-1, then the special primes.
  std::vector<std::size_t> idx = range_indices(chain);
  for (std::size_t k = 0; k < K; ++k) idx.push_back(L + k);
  KeySwitchKey k;
  k.chain = chain == L ? 0 : static_cast<std::uint32_t>(chain);
  k.b.resize(digits);
  k.a.resize(digits);
  for (std::size_t d = 0; d < digits; ++d) {
    k.b[d].resize(total * ctx.n());
    check_limbs_mod(r, ctx, k.b[d].data(), idx);
    if (!seeded) {
      k.a[d].resize(total * ctx.n());
      check_limbs_mod(r, ctx, k.a[d].data(), idx);
    }
  }
  if (seeded) {
    Seed s;
    r.bytes(s.data(), s.size());
    k.seed = s;
    for (std::size_t d = 0; d < digits; ++d) {
      expand_switch_key_a(ctx, s, d, k.a[d]);  // over every prime
      if (chain < L) keep_chain_limbs(k.a[d], L, chain, K, ctx.n());
    }
  }
  return k;
}

std::uint64_t switch_key_max_bytes(const CkksContext& ctx) {
  const std::uint64_t total = ctx.chain_size() + ctx.special_count();
  return 64 + 2 * ctx.params().digits() * total * ctx.n() * 8;  // a full key; restricted ones are smaller
}

}  // namespace

std::string object_type_name(ObjectType t) {
  switch (t) {
    case ObjectType::kParameters: return "parameter set";
    case ObjectType::kCiphertext: return "ciphertext";
    case ObjectType::kPlaintext: return "plaintext";
    case ObjectType::kPublicKey: return "public key";
    case ObjectType::kSecretKey: return "secret key";
    case ObjectType::kRelinKeys: return "relinearization key";
    case ObjectType::kGaloisKeys: return "Galois key set";
    case ObjectType::kBootstrapKeys: return "bootstrapping key set";
  }
  return "unknown object (type " + std::to_string(static_cast<int>(t)) + ")";
}

// ---- parameters ----

void save(std::ostream& os, const CkksParameters& p) {
  write_object(os, ObjectType::kParameters, p.id(), [&](Writer& w) {
    w.put<std::uint32_t>(static_cast<std::uint32_t>(p.poly_degree()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(p.q().size()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(p.p().size()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(p.digits()));
    w.put<std::uint8_t>(p.insecure() ? 1 : 0);
    w.words(p.q().data(), p.q().size());
    w.words(p.p().data(), p.p().size());
  });
}

CkksParameters load_parameters(std::istream& is, const ParameterOptions& opts) {
  ensure_sodium();
  Reader r(is, "parameter set");
  const std::uint64_t len = read_header(r, ObjectType::kParameters, nullptr, 17 + 8 * (64 + 16));
  const std::uint32_t n = r.get<std::uint32_t>(), L = r.get<std::uint32_t>(), K = r.get<std::uint32_t>();
  const std::uint32_t digits = r.get<std::uint32_t>();
  const std::uint8_t insecure = r.get<std::uint8_t>();
  if (L == 0 || L > 64 || K == 0 || K > 16) throw Error("parameter set is corrupted: bad prime counts");
  if (insecure > 1) throw Error("parameter set is corrupted: bad flag");
  std::vector<u64> q(L), p(K);
  r.bytes(q.data(), L * 8);
  r.bytes(p.data(), K * 8);
  r.finish(len);
  // The security bound is re-checked: an insecure set loads only if the caller allows it.
  ParameterOptions o = opts;
  o.digits = digits;
  CkksParameters params = CkksParameters::from_primes(n, std::move(q), std::move(p), o);
  if (params.id() != r.header_id()) throw Error("parameter set is corrupted: identifier does not match its primes");
  return params;
}

// ---- ciphertexts and plaintexts ----

void save(std::ostream& os, const CkksContext& ctx, const Ciphertext& ct, bool seeded) {
  if (ct.n() != ctx.n() || ct.level() > ctx.max_level()) throw Error("ciphertext does not belong to these parameters");
  bool use_seed = seeded && ct.seed().has_value() && ct.size() == 2;
  if (use_seed) {
    // The seed may be stale after in-place operations: store it only if it still reproduces c1.
    std::vector<u64> a(ct.limbs() * ct.n());
    expand_symmetric_a(ctx, *ct.seed(), ct.level(), a.data());
    use_seed = std::equal(a.begin(), a.end(), ct.poly(1));
  }
  write_object(os, ObjectType::kCiphertext, ctx.params().id(), [&](Writer& w) {
    w.put<std::uint32_t>(static_cast<std::uint32_t>(ct.level()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(ct.size()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(ct.slots()));
    w.put<double>(ct.scale());
    w.put<std::uint8_t>(use_seed ? 1 : 0);
    if (use_seed) {
      w.words(ct.poly(0), ct.limbs() * ct.n());
      w.bytes(ct.seed()->data(), ct.seed()->size());
    } else {
      w.words(ct.poly(0), ct.word_count());
    }
  });
}

namespace {
void check_scale_slots(double scale, std::uint32_t slots, const CkksContext& ctx, const std::string& what) {
  if (!std::isfinite(scale) || scale <= 0) throw Error(what + " is corrupted: invalid scale");
  if (slots == 0 || slots > ctx.n() / 2 || (slots & (slots - 1)) != 0) throw Error(what + " is corrupted: invalid slot count");
}
}  // namespace

Ciphertext load_ciphertext(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "ciphertext");
  const std::uint64_t len =
      read_header(r, ObjectType::kCiphertext, &ctx.params(), 64 + 3 * ctx.chain_size() * ctx.n() * 8);
  const std::uint32_t level = r.get<std::uint32_t>(), size = r.get<std::uint32_t>(), slots = r.get<std::uint32_t>();
  const double scale = r.get<double>();
  const std::uint8_t seeded = r.get<std::uint8_t>();
  if (level > ctx.max_level()) {
    throw Error("ciphertext level " + std::to_string(level) + " exceeds the parameters' top level " +
                std::to_string(ctx.max_level()));
  }
  if (size < 2 || size > 3) throw Error("ciphertext is corrupted: it has " + std::to_string(size) + " components");
  if (seeded > 1 || (seeded && size != 2)) throw Error("ciphertext is corrupted: bad seed flag");
  check_scale_slots(scale, slots, ctx, "ciphertext");
  const std::uint64_t poly_bytes = (level + 1) * ctx.n() * 8;
  r.require(seeded ? poly_bytes + 32 : size * poly_bytes);
  Ciphertext ct(ctx.n(), level, size, slots, scale);
  const auto idx = range_indices(level + 1);
  for (std::size_t k = 0; k < (seeded ? 1u : size); ++k) check_limbs_mod(r, ctx, ct.poly(k), idx);
  Seed s{};
  if (seeded) r.bytes(s.data(), s.size());
  r.finish(len);
  if (seeded) {
    expand_symmetric_a(ctx, s, level, ct.poly(1));
    ct.set_seed(s);
  }
  return ct;
}

void save(std::ostream& os, const CkksContext& ctx, const Plaintext& pt) {
  if (pt.n() != ctx.n() || pt.level() > ctx.max_level()) throw Error("plaintext does not belong to these parameters");
  write_object(os, ObjectType::kPlaintext, ctx.params().id(), [&](Writer& w) {
    w.put<std::uint32_t>(static_cast<std::uint32_t>(pt.level()));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(pt.slots()));
    w.put<double>(pt.scale());
    w.words(pt.data(), pt.word_count());
  });
}

Plaintext load_plaintext(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "plaintext");
  const std::uint64_t len = read_header(r, ObjectType::kPlaintext, &ctx.params(), 64 + ctx.chain_size() * ctx.n() * 8);
  const std::uint32_t level = r.get<std::uint32_t>(), slots = r.get<std::uint32_t>();
  const double scale = r.get<double>();
  if (level > ctx.max_level()) throw Error("plaintext level exceeds the parameters' top level");
  check_scale_slots(scale, slots, ctx, "plaintext");
  r.require((level + 1) * ctx.n() * 8);
  Plaintext pt(ctx.n(), level, slots, scale);
  check_limbs_mod(r, ctx, pt.data(), range_indices(level + 1));
  r.finish(len);
  return pt;
}

// ---- keys ----

void save(std::ostream& os, const CkksContext& ctx, const SecretKey& sk) {
  if (sk.params_id != ctx.params().id() || sk.coeffs.size() != ctx.n()) throw Error("secret key does not belong to these parameters");
  write_object(os, ObjectType::kSecretKey, ctx.params().id(),
               [&](Writer& w) { w.bytes(sk.coeffs.data(), sk.coeffs.size()); }, &sk.key_set);
}

SecretKey load_secret_key(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "secret key");
  SecretKey sk;
  const std::uint64_t len = read_header(r, ObjectType::kSecretKey, &ctx.params(), ctx.n() + sizeof(KeySetId), &sk.key_set);
  r.require(ctx.n());
  sk.coeffs.resize(ctx.n());
  r.bytes(sk.coeffs.data(), ctx.n());
  for (std::int8_t c : sk.coeffs) {
    if (c < -1 || c > 1) throw Error("secret key is corrupted: coefficient outside {-1, 0, 1}");
  }
  r.finish(len);
  compute_secret_ntt(ctx, sk);
  return sk;
}

void save(std::ostream& os, const CkksContext& ctx, const PublicKey& pk, bool seeded) {
  if (pk.params_id != ctx.params().id()) throw Error("public key does not belong to these parameters");
  const bool use_seed = seeded && pk.seed.has_value();
  write_object(
      os, ObjectType::kPublicKey, ctx.params().id(),
      [&](Writer& w) {
        w.put<std::uint8_t>(use_seed ? 1 : 0);
        w.words(pk.b.data(), pk.b.size());
        if (use_seed) w.bytes(pk.seed->data(), pk.seed->size());
        else w.words(pk.a.data(), pk.a.size());
      },
      &pk.key_set);
}

PublicKey load_public_key(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "public key");
  const std::size_t total = ctx.chain_size() + ctx.special_count();
  PublicKey pk;
  const std::uint64_t len = read_header(r, ObjectType::kPublicKey, &ctx.params(), 64 + 2 * total * ctx.n() * 8, &pk.key_set);
  const std::uint8_t seeded = r.get<std::uint8_t>();
  if (seeded > 1) throw Error("public key is corrupted: bad seed flag");
  r.require(total * ctx.n() * 8 * (seeded ? 1 : 2) + (seeded ? 32 : 0));
  pk.params_id = ctx.params().id();
  const auto idx = range_indices(total);
  pk.b.resize(total * ctx.n());
  check_limbs_mod(r, ctx, pk.b.data(), idx);
  if (seeded) {
    Seed s;
    r.bytes(s.data(), s.size());
    pk.seed = s;
  } else {
    pk.a.resize(pk.b.size());
    check_limbs_mod(r, ctx, pk.a.data(), idx);
  }
  r.finish(len);
  if (seeded) expand_public_key_a(ctx, *pk.seed, pk.a);
  return pk;
}

void save(std::ostream& os, const CkksContext& ctx, const RelinKeys& rk, bool seeded) {
  if (rk.params_id != ctx.params().id()) throw Error("relinearization key does not belong to these parameters");
  write_object(
      os, ObjectType::kRelinKeys, ctx.params().id(), [&](Writer& w) { write_switch_key(w, ctx, rk.key, seeded); }, &rk.key_set);
}

RelinKeys load_relin_keys(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "relinearization key");
  RelinKeys rk;
  std::uint16_t version = 0;
  const std::uint64_t len = read_header(r, ObjectType::kRelinKeys, &ctx.params(), switch_key_max_bytes(ctx), &rk.key_set, &version);
  rk.params_id = ctx.params().id();
  rk.key = read_switch_key(r, ctx, "relinearization key", version);
  r.finish(len);
  return rk;
}

void save(std::ostream& os, const CkksContext& ctx, const BootstrapSwitchKeys& k, bool seeded) {
  const std::size_t n = ctx.n();
  if (k.to_sparse.a.size() != 2 * n || k.to_sparse.b.size() != 2 * n) throw Error("bootstrapping key does not belong to these parameters");
  write_object(
      os, ObjectType::kBootstrapKeys, ctx.params().id(),
      [&](Writer& w) {
        write_switch_key(w, ctx, k.from_sparse, seeded);
        w.words(k.to_sparse.b.data(), k.to_sparse.b.size());
        w.words(k.to_sparse.a.data(), k.to_sparse.a.size());
      },
      &k.key_set);
}

BootstrapSwitchKeys load_bootstrap_keys(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "bootstrapping key");
  BootstrapSwitchKeys k;
  std::uint16_t version = 0;
  const std::uint64_t level0 = 4 * ctx.n() * 8;
  const std::uint64_t len =
      read_header(r, ObjectType::kBootstrapKeys, &ctx.params(), switch_key_max_bytes(ctx) + level0, &k.key_set, &version);
  k.from_sparse = read_switch_key(r, ctx, "bootstrapping key", version);
  // The level-0 key: limbs mod q_0 and p_0 (key indices 0 and L).
  r.require(level0);
  const std::vector<std::size_t> idx{0, ctx.chain_size()};
  k.to_sparse.b.resize(2 * ctx.n());
  k.to_sparse.a.resize(2 * ctx.n());
  check_limbs_mod(r, ctx, k.to_sparse.b.data(), idx);
  check_limbs_mod(r, ctx, k.to_sparse.a.data(), idx);
  r.finish(len);
  return k;
}

void save(std::ostream& os, const CkksContext& ctx, const GaloisKeys& gk, bool seeded) {
  if (gk.params_id != ctx.params().id()) throw Error("Galois keys do not belong to these parameters");
  write_object(
      os, ObjectType::kGaloisKeys, ctx.params().id(),
      [&](Writer& w) {
        w.put<std::uint32_t>(static_cast<std::uint32_t>(gk.keys.size()));
        for (const auto& [elt, key] : gk.keys) {
          w.put<std::uint32_t>(elt);
          write_switch_key(w, ctx, key, seeded);
        }
      },
      &gk.key_set);
}

GaloisKeys load_galois_keys(std::istream& is, const CkksContext& ctx) {
  ensure_sodium();
  Reader r(is, "Galois key set");
  const std::uint64_t max_keys = ctx.n();  // at most one per element of the Galois group
  GaloisKeys gk;
  std::uint16_t version = 0;
  const std::uint64_t len = read_header(r, ObjectType::kGaloisKeys, &ctx.params(), 8 + max_keys * (8 + switch_key_max_bytes(ctx)),
                                        &gk.key_set, &version);
  const std::uint32_t count = r.get<std::uint32_t>();
  if (count > max_keys) throw Error("Galois key set is corrupted: too many keys");
  gk.params_id = ctx.params().id();
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t elt = r.get<std::uint32_t>();
    if ((elt & 1) == 0 || elt >= 2 * ctx.n() || elt == 1) throw Error("Galois key set is corrupted: invalid Galois element");
    if (gk.has(elt)) throw Error("Galois key set is corrupted: duplicate Galois element");
    gk.keys.emplace(elt, read_switch_key(r, ctx, "Galois key set", version));
  }
  r.finish(len);
  return gk;
}

// ---- files ----

void write_file(const std::string& path, const std::function<void(std::ostream&)>& body) {
  write_file_atomic(path, body, FileMode::Public);
}

void write_secret_file(const std::string& path, const std::function<void(std::ostream&)>& body) {
  write_file_atomic(path, body, FileMode::Secret);
}

void read_secret_file(const std::string& path, const std::function<void(std::istream&)>& body) {
  // A secret key of the largest ring degree is 64 KiB; anything far larger is not one.
  const auto bytes = hecnn::read_secret_file(path, std::size_t{1} << 22);
  MemoryIstream is(bytes->data(), bytes->size());
  try {
    body(is);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  if (is.peek() != std::char_traits<char>::eof()) throw Error(path + ": unexpected data after the end of the object");
}

struct Checksum::State {
  crypto_generichash_state st;
};

Checksum::Checksum() : st_(std::make_unique<State>()) {
  ensure_sodium();
  crypto_generichash_init(&st_->st, nullptr, 0, kBytes);
}

Checksum::~Checksum() { sodium_memzero(&st_->st, sizeof st_->st); }

void Checksum::update(const void* p, std::size_t n) {
  crypto_generichash_update(&st_->st, static_cast<const unsigned char*>(p), n);
}

Checksum::Digest Checksum::final() {
  Digest d;
  crypto_generichash_final(&st_->st, d.data(), d.size());
  return d;
}

Checksum::Digest Checksum::of(const void* p, std::size_t n) {
  Checksum c;
  c.update(p, n);
  return c.final();
}

std::string key_set_hex(const KeySetId& id) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t b : id) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

KeySetId key_set_from_hex(const std::string& hex) {
  KeySetId id{};
  if (hex.size() != 2 * id.size()) throw Error("a key id must be " + std::to_string(2 * id.size()) + " hexadecimal digits");
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw Error("a key id must be lowercase hexadecimal digits");
  };
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return id;
}

bool key_set_unset(const KeySetId& id) {
  return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

void read_file(const std::string& path, const std::function<void(std::istream&)>& body) {
  check_regular_file(path, "file");  // a FIFO would block the open, a device never end
  std::ifstream is(path, std::ios::binary);
  if (!is) throw Error("cannot open '" + path + "' for reading");
  try {
    body(is);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  if (is.peek() != std::char_traits<char>::eof()) throw Error(path + ": unexpected data after the end of the object");
}

}  // namespace hecnn::ckks
