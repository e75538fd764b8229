// Round trips of every serializable object, and every kind of bad file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

#include "ckks/ckks.h"
#include "common/files.h"
#include "test_util.h"

using namespace hecnn::ckks;
using hecnn::test::precision_bits;
using hecnn::test::random_vector;
using hecnn::test::expect_error_mentioning;

namespace {

struct Fixture {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  Fixture() {
    ctx = CkksContext::create(CkksParameters::from_bit_sizes(8192, {50, 40, 40}, {60}));
    keygen = std::make_unique<KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    gk = keygen->create_galois_keys({1, -2}, true);
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

std::string bytes_of(const std::function<void(std::ostream&)>& save_fn) {
  std::ostringstream os(std::ios::binary);
  save_fn(os);
  return os.str();
}

template <typename Load>
void expect_load_error(const std::string& data, const Load& load, const std::string& fragment) {
  std::istringstream is(data, std::ios::binary);
  try {
    load(is);
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const hecnn::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Serialization, ParametersRoundTrip) {
  const auto p = CkksParameters::from_bit_sizes(16384, {50, 40, 40}, {60, 60}, {.digits = 2});
  const std::string b = bytes_of([&](std::ostream& os) { save(os, p); });
  std::istringstream is(b, std::ios::binary);
  const auto q = load_parameters(is);
  EXPECT_EQ(p, q);
  EXPECT_EQ(q.digits(), 2u);
  // Insecure parameters load only when the caller allows them.
  const auto weak = CkksParameters::from_bit_sizes(8192, {60, 60, 60, 60}, {60}, {.allow_insecure = true});
  const std::string wb = bytes_of([&](std::ostream& os) { save(os, weak); });
  expect_load_error(wb, [](std::istream& s) { load_parameters(s); }, "security");
  std::istringstream ok(wb, std::ios::binary);
  EXPECT_TRUE(load_parameters(ok, {.allow_insecure = true}).insecure());
}

TEST(Serialization, CiphertextSeededAndFull) {
  Fixture& f = fx();
  CkksEncoder encoder(f.ctx);
  Decryptor dec(f.ctx, f.keygen->secret_key());
  const auto x = random_vector(encoder.max_slots(), -1, 1, 1);
  const Ciphertext sym = Encryptor(f.ctx, f.keygen->secret_key()).encrypt(encoder.encode(x, 0x1p40));
  const std::string seeded = bytes_of([&](std::ostream& os) { save(os, *f.ctx, sym, true); });
  const std::string full = bytes_of([&](std::ostream& os) { save(os, *f.ctx, sym, false); });
  EXPECT_LT(seeded.size(), full.size() * 6 / 10);  // about half
  for (const std::string* b : {&seeded, &full}) {
    std::istringstream is(*b, std::ios::binary);
    const Ciphertext back = load_ciphertext(is, *f.ctx);
    ASSERT_EQ(back.word_count(), sym.word_count());
    EXPECT_TRUE(std::equal(back.poly(0), back.poly(0) + back.word_count(), sym.poly(0)));
    EXPECT_EQ(back.scale(), sym.scale());
    EXPECT_EQ(back.slots(), sym.slots());
    EXPECT_GE(precision_bits(encoder.decode(dec.decrypt(back)), x), 20.0);
  }
  // After an in-place operation on component 1 the seed is stale: the full form is written.
  Ciphertext changed = sym;
  Evaluator(f.ctx).multiply_integer_inplace(changed, 3);
  const std::string cb = bytes_of([&](std::ostream& os) { save(os, *f.ctx, changed, true); });
  EXPECT_EQ(cb.size(), full.size());
  std::istringstream cs(cb, std::ios::binary);
  std::vector<double> x3(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x3[i] = 3 * x[i];
  EXPECT_GE(precision_bits(encoder.decode(dec.decrypt(load_ciphertext(cs, *f.ctx))), x3), 18.0);
  // A 3-component ciphertext round-trips too.
  Ciphertext three = Evaluator(f.ctx).multiply(sym, sym);
  const std::string tb = bytes_of([&](std::ostream& os) { save(os, *f.ctx, three); });
  std::istringstream ts(tb, std::ios::binary);
  EXPECT_EQ(load_ciphertext(ts, *f.ctx).size(), 3u);
}

TEST(Serialization, PlaintextAndKeysRoundTrip) {
  Fixture& f = fx();
  CkksEncoder encoder(f.ctx);
  const auto x = random_vector(64, -1, 1, 2);
  Plaintext pt;
  encoder.encode(x, 0x1p40, 1, pt);
  {
    std::istringstream is(bytes_of([&](std::ostream& os) { save(os, *f.ctx, pt); }), std::ios::binary);
    const Plaintext back = load_plaintext(is, *f.ctx);
    EXPECT_EQ(back.level(), 1u);
    EXPECT_GE(precision_bits(encoder.decode(back), x), 30.0);
  }
  // Secret key: the reloaded key decrypts what the original encrypted.
  std::istringstream sks(bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.keygen->secret_key()); }),
                         std::ios::binary);
  const SecretKey sk = load_secret_key(sks, *f.ctx);
  EXPECT_EQ(sk.ntt, f.keygen->secret_key().ntt);

  // Public key, seeded and full; both encrypt correctly for the original secret key.
  for (bool seeded : {true, false}) {
    const std::string b = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.pk, seeded); });
    std::istringstream is(b, std::ios::binary);
    const PublicKey pk = load_public_key(is, *f.ctx);
    EXPECT_EQ(pk.a, f.pk.a);
    EXPECT_EQ(pk.b, f.pk.b);
    const Ciphertext c = Encryptor(f.ctx, pk).encrypt(encoder.encode(x, 0x1p40));
    EXPECT_GE(precision_bits(encoder.decode(Decryptor(f.ctx, sk).decrypt(c)), x), 20.0);
  }
  // Relinearization and Galois keys, seeded forms about half the size.
  const std::string rk_seeded = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.rk, true); });
  const std::string rk_full = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.rk, false); });
  EXPECT_LT(rk_seeded.size(), rk_full.size() * 6 / 10);
  for (const std::string* b : {&rk_seeded, &rk_full}) {
    std::istringstream is(*b, std::ios::binary);
    const RelinKeys rk = load_relin_keys(is, *f.ctx);
    EXPECT_EQ(rk.key.a, f.rk.key.a);
    EXPECT_EQ(rk.key.b, f.rk.key.b);
  }
  std::istringstream gs(bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.gk); }), std::ios::binary);
  const GaloisKeys gk = load_galois_keys(gs, *f.ctx);
  ASSERT_EQ(gk.keys.size(), f.gk.keys.size());
  Evaluator ev(f.ctx);
  const Ciphertext c = Encryptor(f.ctx, f.pk).encrypt(encoder.encode(x, 0x1p40));
  const Ciphertext r = ev.rotate(c, -2, gk);
  std::vector<double> want(64);
  for (std::size_t i = 0; i < 64; ++i) want[i] = x[(i + 62) % 64];
  EXPECT_GE(precision_bits(encoder.decode(Decryptor(f.ctx, sk).decrypt(r)), want), 20.0);
}

TEST(Serialization, BadInputIsRejectedWithClearErrors) {
  Fixture& f = fx();
  CkksEncoder encoder(f.ctx);
  const Ciphertext c = Encryptor(f.ctx, f.pk).encrypt(encoder.encode(random_vector(32, -1, 1, 3), 0x1p40));
  const std::string good = bytes_of([&](std::ostream& os) { save(os, *f.ctx, c); });
  auto load_ct = [&](std::istream& is) { load_ciphertext(is, *f.ctx); };

  // Truncated anywhere: header, payload, checksum.
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{20}, std::size_t{100}, good.size() / 2,
                          good.size() - 1}) {
    expect_load_error(good.substr(0, cut), load_ct, "truncated");
  }
  // Corrupted payload byte: caught by the checksum (or the coefficient range check).
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x01;
  expect_load_error(flipped, load_ct, "corrupted");
  // Bad magic.
  std::string magic = good;
  magic[0] = 'X';
  expect_load_error(magic, load_ct, "magic");
  // Unsupported version.
  std::string version = good;
  version[4] = 9;
  expect_load_error(version, load_ct, "version");
  // Another object type.
  const std::string pt_bytes = bytes_of([&](std::ostream& os) { save(os, *f.ctx, encoder.encode(std::vector<double>{1.0}, 0x1p40)); });
  expect_load_error(pt_bytes, load_ct, "expected a ciphertext");
  // Oversized declared length (would otherwise drive a huge read).
  std::string oversized = good;
  const std::uint64_t huge = 1ULL << 40;
  std::memcpy(oversized.data() + 16, &huge, 8);
  expect_load_error(oversized, load_ct, "more than these parameters allow");
  // Fields running past a shortened declared length.
  std::string shortlen = good;
  const std::uint64_t tiny = 8;
  std::memcpy(shortlen.data() + 16, &tiny, 8);
  expect_load_error(shortlen, load_ct, "corrupted");
  // Level beyond the parameters' top.
  std::string level = good;
  const std::uint32_t lv = 77;
  std::memcpy(level.data() + 24, &lv, 4);
  expect_load_error(level, load_ct, "level");
  // Wrong parameters: same object, other context.
  const auto other = CkksContext::create(CkksParameters::from_bit_sizes(8192, {50, 40}, {60}));
  expect_load_error(good, [&](std::istream& is) { load_ciphertext(is, *other); }, "other encryption parameters");
  expect_load_error(bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.rk); }),
                    [&](std::istream& is) { load_relin_keys(is, *other); }, "other encryption parameters");
  // Corrupted keys.
  std::string gk_bytes = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.gk); });
  gk_bytes[gk_bytes.size() - 40] ^= 0x40;
  expect_load_error(gk_bytes, [&](std::istream& is) { load_galois_keys(is, *f.ctx); }, "corrupted");
  std::string sk_bytes = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.keygen->secret_key()); });
  sk_bytes[24 + 16 + 6] = 5;  // a coefficient (after the header and the key-set id)
  expect_load_error(sk_bytes, [&](std::istream& is) { load_secret_key(is, *f.ctx); }, "corrupted");
  // Parameter file with a forged identifier.
  std::string pb = bytes_of([&](std::ostream& os) { save(os, f.ctx->params()); });
  pb[8] ^= 1;
  expect_load_error(pb, [](std::istream& is) { load_parameters(is); }, "corrupted");
}

TEST(Serialization, FilesRejectTrailingDataAndMissingPaths) {
  Fixture& f = fx();
  const auto dir = std::filesystem::temp_directory_path() / ("hecnn-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "rk.bin").string();
  write_file(path, [&](std::ostream& os) { save(os, *f.ctx, f.rk); });
  RelinKeys rk;
  read_file(path, [&](std::istream& is) { rk = load_relin_keys(is, *f.ctx); });
  EXPECT_EQ(rk.key.b, f.rk.key.b);
  {
    std::ofstream app(path, std::ios::binary | std::ios::app);
    app << "junk";
  }
  try {
    read_file(path, [&](std::istream& is) { rk = load_relin_keys(is, *f.ctx); });
    FAIL();
  } catch (const hecnn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected data"), std::string::npos) << e.what();
  }
  expect_error_mentioning([&] { read_file((dir / "missing.bin").string(), [](std::istream&) {}); }, "cannot open file " + (dir / "missing.bin").string() + " (No such file or directory)");
  std::filesystem::remove_all(dir);
}

TEST(Serialization, ReloadedParametersKeepTheirDigitSplit) {
  // Six 40-bit primes under three 60-bit special primes: the automatic split must survive a reload.
  const auto p = CkksParameters::from_bit_sizes(16384, {40, 40, 40, 40, 40, 40}, {60, 60, 60});
  std::istringstream is(bytes_of([&](std::ostream& os) { save(os, p); }), std::ios::binary);
  const auto q = load_parameters(is);
  EXPECT_EQ(q.digit_size(), p.digit_size());
  EXPECT_EQ(q.digits(), p.digits());
  EXPECT_EQ(q.id(), p.id());
}

namespace {

// The same key object in format version 1: no key-set id, checksum recomputed.
std::uint16_t version_of_bytes(const std::string& b) {
  std::uint16_t v = 0;
  std::memcpy(&v, b.data() + 4, 2);
  return v;
}

// A version 2 or 3 key object rewritten as version 1: no key-set id, and for a relinearization key
// (switch_key) no count of covered chain primes (version 3).
std::string as_version1(const std::string& v2, bool switch_key = false) {
  std::string body = v2.substr(24 + 16, v2.size() - 24 - 16 - 32);
  std::uint64_t removed = 16;
  if (switch_key && version_of_bytes(v2) >= 3) {
    body.erase(5, 4);  // after the digit count and the seed flag
    removed += 4;
  }
  std::string v1 = v2.substr(0, 24) + body;
  const std::uint16_t version = 1;
  std::memcpy(v1.data() + 4, &version, 2);
  std::uint64_t len = 0;
  std::memcpy(&len, v1.data() + 16, 8);
  len -= removed;
  std::memcpy(v1.data() + 16, &len, 8);
  const auto sum = Checksum::of(v1.data(), v1.size());
  return v1 + std::string(reinterpret_cast<const char*>(sum.data()), sum.size());
}

std::uint16_t version_of(const std::string& b) { return version_of_bytes(b); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : std::filesystem::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(Serialization, KeysCarryTheirKeySetId) {
  Fixture& f = fx();
  const SecretKey& sk = f.keygen->secret_key();
  EXPECT_FALSE(key_set_unset(sk.key_set));
  EXPECT_EQ(f.pk.key_set, sk.key_set);
  EXPECT_EQ(f.rk.key_set, sk.key_set);
  EXPECT_EQ(f.gk.key_set, sk.key_set);
  EXPECT_NE(KeyGenerator(f.ctx).secret_key().key_set, sk.key_set);  // every generation its own
  EXPECT_EQ(key_set_from_hex(key_set_hex(sk.key_set)), sk.key_set);
  EXPECT_THROW(key_set_from_hex("12"), hecnn::Error);
  EXPECT_THROW(key_set_from_hex(std::string(32, 'g')), hecnn::Error);

  // Keys are written as version 3 and keep their id; objects without keys stay version 1.
  const std::string skb = bytes_of([&](std::ostream& os) { save(os, *f.ctx, sk); });
  const std::string rkb = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.rk); });
  const std::string pkb = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.pk); });
  const std::string gkb = bytes_of([&](std::ostream& os) { save(os, *f.ctx, f.gk); });
  for (const std::string* b : {&skb, &rkb, &pkb, &gkb}) EXPECT_EQ(version_of(*b), kKeyFormatVersion);
  EXPECT_EQ(version_of(bytes_of([&](std::ostream& os) { save(os, f.ctx->params()); })), 1);
  CkksEncoder encoder(f.ctx);
  const Ciphertext c = Encryptor(f.ctx, f.pk).encrypt(encoder.encode(std::vector<double>{0.5}, 0x1p40));
  EXPECT_EQ(version_of(bytes_of([&](std::ostream& os) { save(os, *f.ctx, c); })), 1);
  {
    std::istringstream a(skb, std::ios::binary), b(rkb, std::ios::binary), p(pkb, std::ios::binary), g(gkb, std::ios::binary);
    EXPECT_EQ(load_secret_key(a, *f.ctx).key_set, sk.key_set);
    EXPECT_EQ(load_relin_keys(b, *f.ctx).key_set, sk.key_set);
    EXPECT_EQ(load_public_key(p, *f.ctx).key_set, sk.key_set);
    EXPECT_EQ(load_galois_keys(g, *f.ctx).key_set, sk.key_set);
  }
  // The id is covered by the checksum.
  std::string edited = rkb;
  edited[24] ^= 1;
  expect_load_error(edited, [&](std::istream& is) { load_relin_keys(is, *f.ctx); }, "checksum");
  // Version 1 keys still load, with no id.
  std::istringstream v1s(as_version1(skb), std::ios::binary);
  const SecretKey old = load_secret_key(v1s, *f.ctx);
  EXPECT_TRUE(key_set_unset(old.key_set));
  EXPECT_EQ(old.ntt, sk.ntt);
  std::istringstream v1r(as_version1(rkb, true), std::ios::binary);
  const RelinKeys old_rk = load_relin_keys(v1r, *f.ctx);
  EXPECT_TRUE(key_set_unset(old_rk.key_set));
  EXPECT_EQ(old_rk.key.b, f.rk.key.b);
}

TEST(Serialization, SecretFilesArePrivateFromCreationAndWritesAreAtomic) {
  Fixture& f = fx();
  const auto dir = std::filesystem::temp_directory_path() / ("hecnn-atomic-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string secret = (dir / "secret.key").string();
  // Mode 0600 whatever the umask, with no window: the file never exists under another mode.
  const mode_t old_mask = ::umask(0);
  write_secret_file(secret, [&](std::ostream& os) { save(os, *f.ctx, f.keygen->secret_key()); });
  ::umask(old_mask);
  struct stat st {};
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  SecretKey sk;
  read_secret_file(secret, [&](std::istream& is) { sk = load_secret_key(is, *f.ctx); });
  EXPECT_EQ(sk.ntt, f.keygen->secret_key().ntt);
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"secret.key"});  // no temporary file left

  // A secret key readable by others is refused, like ssh's private keys.
  ::chmod(secret.c_str(), 0644);
  hecnn::test::expect_error_mentioning([&] { read_secret_file(secret, [](std::istream&) {}); }, "chmod 600");
  ::chmod(secret.c_str(), 0600);

  // A symbolic link at the output name is replaced, never followed: its target is untouched.
  const std::string victim = (dir / "victim").string(), link = (dir / "link.bin").string();
  std::ofstream(victim) << "precious";
  std::filesystem::create_symlink(victim, link);
  write_file(link, [&](std::ostream& os) { save(os, *f.ctx, f.rk); });
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_FALSE(std::filesystem::is_symlink(link));
  RelinKeys rk;
  read_file(link, [&](std::istream& is) { rk = load_relin_keys(is, *f.ctx); });
  EXPECT_EQ(rk.key.b, f.rk.key.b);
  write_secret_file(link, [&](std::ostream& os) { os << "s"; });
  EXPECT_EQ(slurp(victim), "precious");

  // A write that fails half-way leaves the old file whole and no temporary file.
  const std::string before = slurp(secret);
  EXPECT_THROW(write_secret_file(secret,
                                 [&](std::ostream& os) {
                                   os << "half";
                                   throw hecnn::Error("interrupted");
                                 }),
               hecnn::Error);
  EXPECT_EQ(slurp(secret), before);
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"link.bin", "secret.key", "victim"}));
  // An output that is a directory, or in a missing one, is an error naming it.
  hecnn::test::expect_error_mentioning([&] { write_file(dir.string(), [](std::ostream&) {}); }, dir.string());
  hecnn::test::expect_error_mentioning([&] { write_file((dir / "no/x.bin").string(), [](std::ostream&) {}); }, "x.bin");
  std::filesystem::remove_all(dir);
}
