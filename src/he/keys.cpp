#include "he/keys.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <streambuf>

#include "common/error.h"
#include "common/files.h"

namespace hecnn::he {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[4] = {'H', 'C', 'N', 'B'};
constexpr std::uint16_t kVersion = 1;
constexpr std::uint32_t kMaxKeysJson = 1u << 20;
// A secret key of the largest ring degree is 64 KiB; anything far larger is not one.
constexpr std::uint64_t kMaxSecretBytes = std::uint64_t{1} << 22;
constexpr std::size_t kSum = ckks::Checksum::kBytes;

enum class Part : std::uint8_t { Params = 1, Public = 2, Relin = 3, Galois = 4, Secret = 5, Bootstrap = 6 };
constexpr std::array<Part, 6> kParts{Part::Params, Part::Public, Part::Relin, Part::Galois, Part::Secret, Part::Bootstrap};

const char* file_name(Part p) {
  switch (p) {
    case Part::Params: return "params.bin";
    case Part::Public: return "public.key";
    case Part::Relin: return "relin.key";
    case Part::Galois: return "galois.key";
    case Part::Secret: return "secret.key";
    case Part::Bootstrap: return "bootstrap.key";
  }
  return "?";
}

// Where the parts come from, for messages: a directory's files by path, a bundle's parts by name.
struct Origin {
  std::string where;
  bool directory = false;
  std::string name(const std::string& part) const {
    return directory ? (fs::path(where) / part).string() : where + " (" + part + ")";
  }
};

// Counts the bytes written (the size of a part before it is written anywhere).
class CountingBuf : public std::streambuf {
 public:
  std::uint64_t count = 0;

 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override {
    count += static_cast<std::uint64_t>(n);
    return n;
  }
  int_type overflow(int_type ch) override {
    if (!traits_type::eq_int_type(ch, traits_type::eof())) ++count;
    return traits_type::not_eof(ch);
  }
};

// Writes into a fixed buffer (a SecretBuffer): never reallocates, so no copy of a secret is left.
class FixedBuf : public std::streambuf {
 public:
  FixedBuf(char* p, std::size_t n) { setp(p, p + n); }
  std::size_t written() const { return static_cast<std::size_t>(pptr() - pbase()); }
};

std::uint64_t byte_count(const std::function<void(std::ostream&)>& body) {
  CountingBuf b;
  std::ostream os(&b);
  body(os);
  return b.count;
}

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
T get(std::istream& is, const std::string& where) {
  T v{};
  if (!is.read(reinterpret_cast<char*>(&v), sizeof v)) throw Error(where + ": truncated (no complete header)");
  return v;
}

void check_key_set(const ckks::KeySetId& id, const Origin& o, const std::string& part, const KeyInfo& info) {
  const std::string file = o.name(part), json_file = o.name("keys.json");
  if (ckks::key_set_unset(id)) {
    throw Error(file + " carries no key id (written by an older hecnn, format version 1), so it cannot be matched with " +
                json_file + "; generate the keys again with hecnn keygen");
  }
  if (id != info.key_set) {
    throw Error(file + " and " + json_file + " come from different key generations (key ids " + ckks::key_set_hex(id) +
                " and " + info.key_id + "): every file of a key directory must come from one hecnn keygen");
  }
}

void check_key_directory(const std::string& dir, bool replace) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw Error("cannot use key directory '" + dir + "': " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) throw Error("'" + dir + "' exists and is not a directory");
  if (st.st_uid != ::geteuid()) throw Error("key directory '" + dir + "' belongs to another user; refusing to write keys into it");
  if ((st.st_mode & S_IWOTH) != 0) throw Error("key directory '" + dir + "' is writable by every user; refusing to write keys into it");
  if (!replace && fs::directory_iterator(dir) != fs::directory_iterator()) {
    throw Error("key directory '" + dir + "' exists and is not empty; refusing to replace the keys in it (hecnn keygen "
                "--force replaces them)");
  }
  for (const auto& name : key_file_names()) {
    const std::string path = (fs::path(dir) / name).string();
    struct stat ls {};
    if (::lstat(path.c_str(), &ls) != 0) continue;
    if (S_ISLNK(ls.st_mode)) throw Error(path + " is a symbolic link; refusing to write a key through it or over it");
    if (!S_ISREG(ls.st_mode)) throw Error(path + " exists and is not a regular file");
  }
}

void make_key_directory(const std::string& dir) {
  fs::path d = fs::path(dir).lexically_normal();
  if (d.filename().empty()) d = d.parent_path();  // "keys/"
  if (!d.parent_path().empty()) fs::create_directories(d.parent_path());
  if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
    throw Error("cannot create key directory '" + dir + "': " + std::strerror(errno));
  }
}

void remove_if_present(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw Error("cannot remove " + path + ": " + std::strerror(errno));
}

}  // namespace

KeyInfo parse_key_info(const std::string& text, const std::string& where) {
  if (text.size() > kMaxKeysJson) {
    throw Error(where + ": larger than " + std::to_string(kMaxKeysJson) + " bytes: not a keys.json made by hecnn keygen");
  }
  try {
    const json j = json::parse(text);
    KeyInfo k;
    k.key_id = j.at("key_id").get<std::string>();
    k.key_set = ckks::key_set_from_hex(k.key_id);
    if (ckks::key_set_unset(k.key_set)) throw Error("the key id is all zeros");
    k.spec = ClientSpec::from_json(j.at("spec"));
    k.insecure = j.at("insecure").get<bool>();
    k.model = j.value("model", "");
    return k;
  } catch (const json::exception& e) {
    throw Error(where + ": malformed (" + e.what() + ")");
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

const std::vector<std::string>& key_file_names() {
  static const std::vector<std::string> names{"keys.json", "params.bin", "public.key", "relin.key", "galois.key", "secret.key", "bootstrap.key"};
  return names;
}

// ---- generation ----

KeyBundle KeyBundle::generate(const HePlan& plan, const std::string& model) {
  return generate(*plan.params, plan.keys, plan.client_spec(), model);
}

KeyBundle KeyBundle::generate(const ckks::CkksParameters& params, const KeyRequirements& need, const ClientSpec& spec,
                              const std::string& model) {
  if (spec.params_id != params.id()) throw Error("the client specification is for other parameters than those given");
  if (spec.batch_size > params.max_slots()) throw Error("the client specification's batch is larger than the slot count");
  KeyBundle b;
  b.ctx_ = ckks::CkksContext::create(params);
  ckks::KeyGenerator keygen(b.ctx_);
  b.secret_ = keygen.secret_key();
  b.public_ = keygen.create_public_key();
  b.eval_ = make_evaluation_keys(keygen, need);
  b.info_.key_set = b.secret_->key_set;
  b.info_.key_id = ckks::key_set_hex(b.info_.key_set);
  b.info_.spec = spec;
  b.info_.insecure = params.insecure();
  b.info_.model = model;
  return b;
}

KeyBundle KeyBundle::public_bundle() const {
  KeyBundle b;
  b.info_ = info_;
  b.ctx_ = ctx_;
  b.public_ = public_;
  b.eval_ = eval_;
  return b;
}

const ckks::SecretKey& KeyBundle::secret_key() const {
  if (!secret_) throw Error("these keys hold no secret key (the public part of a key bundle)");
  return *secret_;
}

std::string KeyBundle::keys_json() const {
  json j;
  j["key_id"] = info_.key_id;
  j["spec"] = info_.spec.to_json();
  j["insecure"] = info_.insecure;
  j["model"] = info_.model;
  return j.dump(2) + "\n";
}

// ---- bytes ----

namespace {

// The parts a bundle holds, each with the function that writes it.
struct Writer {
  Part part;
  std::function<void(std::ostream&)> body;
};

std::vector<Writer> writers(const KeyBundle& b, bool with_secret) {
  const ckks::CkksContext& ctx = *b.context();
  std::vector<Writer> w;
  w.push_back({Part::Params, [&b](std::ostream& os) { ckks::save(os, b.params()); }});
  if (b.public_key()) w.push_back({Part::Public, [&b, &ctx](std::ostream& os) { ckks::save(os, ctx, *b.public_key(), true); }});
  if (b.evaluation_keys().relin.params_id != 0) {
    w.push_back({Part::Relin, [&b, &ctx](std::ostream& os) { ckks::save(os, ctx, b.evaluation_keys().relin, true); }});
  }
  if (b.evaluation_keys().galois.params_id != 0) {
    w.push_back({Part::Galois, [&b, &ctx](std::ostream& os) { ckks::save(os, ctx, b.evaluation_keys().galois, true); }});
  }
  if (with_secret && b.has_secret()) {
    w.push_back({Part::Secret, [&b, &ctx](std::ostream& os) { ckks::save(os, ctx, b.secret_key()); }});
  }
  const EvaluationKeys& e = b.evaluation_keys();
  if (e.to_sparse && e.from_sparse) {
    w.push_back({Part::Bootstrap, [&e, &b, &ctx](std::ostream& os) {
                   ckks::save(os, ctx, ckks::BootstrapSwitchKeys{*e.from_sparse, *e.to_sparse, b.info().key_set}, true);
                 }});
  }
  return w;
}

// Magic, version, lengths, the part table, keys.json and the checksum of all of them.
std::string header_bytes(const std::string& keys_json, const std::vector<Writer>& parts, std::vector<std::uint64_t>& sizes) {
  std::string h(kMagic, 4);
  put(h, kVersion);
  put(h, static_cast<std::uint32_t>(keys_json.size()));
  put(h, static_cast<std::uint8_t>(parts.size()));
  sizes.clear();
  for (const auto& p : parts) {
    sizes.push_back(byte_count(p.body));
    put(h, static_cast<std::uint8_t>(p.part));
    put(h, sizes.back());
  }
  h += keys_json;
  const auto digest = ckks::Checksum::of(h.data(), h.size());
  h.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return h;
}

void write_bundle(std::ostream& os, const KeyBundle& b, bool with_secret) {
  const std::string js = b.keys_json();
  const auto parts = writers(b, with_secret);
  std::vector<std::uint64_t> sizes;
  const std::string h = header_bytes(js, parts, sizes);
  os.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& p : parts) p.body(os);
  if (!os) throw Error("writing the key bundle failed");
}

}  // namespace

std::unique_ptr<SecretBuffer> KeyBundle::to_bytes() const {
  const std::string js = keys_json();
  const auto parts = writers(*this, true);
  std::vector<std::uint64_t> sizes;
  const std::string h = header_bytes(js, parts, sizes);
  std::uint64_t total = h.size();
  for (const auto s : sizes) total += s;
  auto out = std::make_unique<SecretBuffer>(static_cast<std::size_t>(total));
  FixedBuf buf(out->data(), out->size());
  std::ostream os(&buf);
  os.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& p : parts) p.body(os);
  if (!os || buf.written() != out->size()) throw Error("serializing the key bundle failed");
  return out;
}

std::string KeyBundle::public_bytes() const {
  const std::string js = keys_json();
  const auto parts = writers(*this, false);
  std::vector<std::uint64_t> sizes;
  const std::string h = header_bytes(js, parts, sizes);
  std::uint64_t total = h.size();
  for (const auto s : sizes) total += s;
  std::string out(static_cast<std::size_t>(total), '\0');
  FixedBuf buf(out.data(), out.size());
  std::ostream os(&buf);
  os.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& p : parts) p.body(os);
  if (!os || buf.written() != out.size()) throw Error("serializing the key bundle failed");
  return out;
}

void KeyBundle::save(std::ostream& os) const { write_bundle(os, *this, true); }

// Builds a bundle part by part, checking each against keys.json; shared by bytes and directories.
class KeyBundleReader {
 public:
  KeyBundleReader(Origin origin, KeyReadOptions options) : o_(std::move(origin)), opt_(options) {}

  void info(KeyInfo info) { b_.info_ = std::move(info); }

  // Reads one part from `is` (the caller checks that it is consumed exactly).
  void part(Part p, std::istream& is) {
    const std::string part = file_name(p);
    if (p != Part::Params && !b_.ctx_) throw Error(o_.name(part) + ": comes before params.bin");
    const KeyInfo& info = b_.info_;
    switch (p) {
      case Part::Params: {
        ckks::ParameterOptions po;
        po.allow_insecure = info.insecure;
        const ckks::CkksParameters params = ckks::load_parameters(is, po);
        if (params.id() != info.spec.params_id) throw Error(o_.where + ": params.bin does not match keys.json");
        if (info.spec.batch_size > params.max_slots()) throw Error(o_.where + ": keys.json: the batch is larger than the slot count");
        b_.ctx_ = ckks::CkksContext::create(params);
        break;
      }
      case Part::Public: b_.public_ = ckks::load_public_key(is, *b_.ctx_); break;
      case Part::Relin: b_.eval_.relin = ckks::load_relin_keys(is, *b_.ctx_); break;
      case Part::Galois: b_.eval_.galois = ckks::load_galois_keys(is, *b_.ctx_); break;
      case Part::Secret:
        if (opt_.secret == SecretPart::Refuse) throw Error(o_.name(part) + ": a secret key, which is never taken here");
        b_.secret_ = ckks::load_secret_key(is, *b_.ctx_);
        break;
      case Part::Bootstrap: {
        ckks::BootstrapSwitchKeys k = ckks::load_bootstrap_keys(is, *b_.ctx_);
        check_key_set(k.key_set, o_, part, info);
        b_.eval_.from_sparse = std::move(k.from_sparse);
        b_.eval_.to_sparse = std::move(k.to_sparse);
        break;
      }
    }
  }

  KeyBundle finish() {
    if (!b_.ctx_) throw Error(o_.name("params.bin") + ": missing");
    if (opt_.secret == SecretPart::Require && !b_.secret_) {
      throw Error(o_.name("secret.key") + ": missing (the secret key is needed here)");
    }
    const KeyInfo& info = b_.info_;
    if (b_.public_) check_key_set(b_.public_->key_set, o_, "public.key", info);
    if (b_.eval_.relin.params_id != 0) check_key_set(b_.eval_.relin.key_set, o_, "relin.key", info);
    if (b_.eval_.galois.params_id != 0) check_key_set(b_.eval_.galois.key_set, o_, "galois.key", info);
    if (b_.secret_) check_key_set(b_.secret_->key_set, o_, "secret.key", info);
    return std::move(b_);
  }

  // The bytes format: header, keys.json, then each part from memory (`read` gives a part's bytes).
  KeyBundle read_bytes(std::istream& head, const std::function<void(Part, std::uint64_t, const std::function<void(std::istream&)>&)>& read);

 private:
  Origin o_;
  KeyReadOptions opt_;
  KeyBundle b_;
};

KeyBundle KeyBundleReader::read_bytes(
    std::istream& is, const std::function<void(Part, std::uint64_t, const std::function<void(std::istream&)>&)>& read) {
  const std::string& w = o_.where;
  char magic[4] = {};
  if (!is.read(magic, 4) || std::memcmp(magic, kMagic, 4) != 0) throw Error(w + ": not a hecnn key bundle");
  const auto version = get<std::uint16_t>(is, w);
  if (version != kVersion) throw Error(w + ": key bundle format version " + std::to_string(version) + " is not supported");
  const auto json_len = get<std::uint32_t>(is, w);
  const auto count = get<std::uint8_t>(is, w);
  std::string h(kMagic, 4);
  put(h, version);
  put(h, json_len);
  put(h, count);
  if (json_len == 0 || json_len > kMaxKeysJson) throw Error(w + ": keys.json of " + std::to_string(json_len) + " bytes (1 to 1 MiB)");
  if (count == 0 || count > kParts.size()) throw Error(w + ": " + std::to_string(count) + " parts (1 to 5)");
  std::vector<std::pair<Part, std::uint64_t>> table;
  std::uint64_t total = json_len;
  for (unsigned i = 0; i < count; ++i) {
    const auto kind = get<std::uint8_t>(is, w);
    const auto len = get<std::uint64_t>(is, w);
    put(h, kind);
    put(h, len);
    if (kind < 1 || kind > kParts.size()) throw Error(w + ": unknown part kind " + std::to_string(kind));
    const Part p = static_cast<Part>(kind);
    if (!table.empty() && kind <= static_cast<std::uint8_t>(table.back().first)) {
      throw Error(w + ": the parts are repeated or out of order");
    }
    if (len == 0) throw Error(o_.name(file_name(p)) + ": empty");
    if (len > opt_.max_bytes || total + len > opt_.max_bytes) {
      throw Error(w + ": larger than the limit of " + std::to_string(opt_.max_bytes) + " bytes");
    }
    if (p == Part::Secret && len > kMaxSecretBytes) throw Error(o_.name(file_name(p)) + ": too large for a secret key");
    total += len;
    table.emplace_back(p, len);
  }
  std::string js(json_len, '\0');
  if (!is.read(js.data(), json_len)) throw Error(w + ": truncated (in keys.json)");
  h += js;
  ckks::Checksum::Digest stored{};
  if (!is.read(reinterpret_cast<char*>(stored.data()), kSum)) throw Error(w + ": truncated (no complete header)");
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzz builds only: let the fuzzer reach the parser
  if (ckks::Checksum::of(h.data(), h.size()) != stored) {
    throw Error(w + ": the header or keys.json is corrupted or was edited (checksum mismatch)");
  }
#endif
  if (table.front().first != Part::Params) throw Error(o_.name("params.bin") + ": missing");
  info(parse_key_info(js, o_.name("keys.json")));
  for (const auto& [p, len] : table) {
    const std::string name = o_.name(file_name(p));
    read(p, len, [&, p = p](std::istream& part_is) {
      try {
        part(p, part_is);
      } catch (const Error& e) {
        const std::string m = e.what();
        throw Error(m.rfind(o_.where, 0) == 0 ? m : name + ": " + m);
      }
    });
  }
  return finish();
}

KeyBundle KeyBundle::from_bytes(const char* data, std::size_t size, const KeyReadOptions& options, const std::string& where) {
  MemoryIstream is(data, size);
  KeyBundleReader r({where, false}, options);
  std::uint64_t offset = 0;
  KeyBundle b = r.read_bytes(is, [&](Part p, std::uint64_t len, const std::function<void(std::istream&)>& body) {
    if (offset == 0) offset = static_cast<std::uint64_t>(is.tellg());
    if (len > size - offset) throw Error(where + " (" + file_name(p) + "): truncated");
    MemoryIstream part(data + offset, static_cast<std::size_t>(len));
    body(part);
    if (part.peek() != std::char_traits<char>::eof()) throw Error(where + " (" + file_name(p) + "): unexpected data after the object");
    offset += len;
  });
  if (offset != size) throw Error(where + ": unexpected data after the key bundle");
  return b;
}

KeyBundle KeyBundle::load(std::istream& is, const KeyReadOptions& options, const std::string& where) {
  KeyBundleReader r({where, false}, options);
  return r.read_bytes(is, [&](Part p, std::uint64_t len, const std::function<void(std::istream&)>& body) {
    // Bounded by the options before this allocation; a secret key's bytes are wiped when freed.
    SecretBuffer buf(static_cast<std::size_t>(len));
    if (!is.read(buf.data(), static_cast<std::streamsize>(len))) throw Error(where + " (" + file_name(p) + "): truncated");
    MemoryIstream part(buf.data(), buf.size());
    body(part);
    if (part.peek() != std::char_traits<char>::eof()) throw Error(where + " (" + file_name(p) + "): unexpected data after the object");
  });
}

// ---- directories ----

KeyFiles KeyBundle::save_directory(const std::string& dir, bool replace) const {
  check_key_directory(dir, replace);
  make_key_directory(dir);
  check_key_directory(dir, replace);  // as it is now (it may have been created by someone else meanwhile)
  const auto file = [&](Part p) { return (fs::path(dir) / file_name(p)).string(); };
  const std::string json_path = (fs::path(dir) / "keys.json").string();
  // keys.json goes first and comes back last: a key generation that fails half-way leaves no key
  // directory that looks complete (and the key ids tell any mixture apart).
  remove_if_present(json_path);
  const auto parts = writers(*this, true);
  KeyFiles sizes;
  for (const Part p : kParts) {
    const Writer* w = nullptr;
    for (const auto& x : parts) {
      if (x.part == p) w = &x;
    }
    const std::string path = file(p);
    if (!w) {
      remove_if_present(path);
      continue;
    }
    if (p == Part::Secret) ckks::write_secret_file(path, w->body);
    else ckks::write_file(path, w->body);
    const std::size_t n = static_cast<std::size_t>(fs::file_size(path));
    switch (p) {
      case Part::Params: sizes.params_bytes = n; break;
      case Part::Public: sizes.public_bytes = n; break;
      case Part::Relin: sizes.relin_bytes = n; break;
      case Part::Galois: sizes.galois_bytes = n; break;
      case Part::Secret: sizes.secret_bytes = n; break;
      case Part::Bootstrap: sizes.bootstrap_bytes = n; break;
    }
  }
  const std::string js = keys_json();
  write_file_atomic(json_path, [&](std::ostream& os) { os << js; });
  return sizes;
}

KeyBundle KeyBundle::load_directory(const std::string& dir, const KeyReadOptions& options) {
  const Origin origin{dir, true};
  const std::string json_path = origin.name("keys.json");
  if (fs::exists(json_path) && regular_file_size(json_path, "key description") > kMaxKeysJson) {
    throw Error(json_path + ": larger than " + std::to_string(kMaxKeysJson) + " bytes: not a keys.json made by hecnn keygen");
  }
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw Error("cannot open " + json_path + " (not a key directory made by hecnn keygen?)");
  std::string js((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  KeyBundleReader r(origin, options);
  r.info(parse_key_info(js, json_path));
  std::uint64_t total = js.size();
  for (const Part p : kParts) {
    const std::string path = origin.name(file_name(p));
    if (p == Part::Secret) {
      if (options.secret == SecretPart::Ignore || options.secret == SecretPart::Refuse) continue;  // never opened
      if (options.secret == SecretPart::Optional && !fs::exists(path)) continue;
      ckks::read_secret_file(path, [&](std::istream& is) { r.part(p, is); });
      continue;
    }
    if (p != Part::Params && !fs::exists(path)) continue;
    if (fs::exists(path)) {
      total += regular_file_size(path, "key file");
      if (total > options.max_bytes) throw Error(dir + ": the keys are larger than the limit of " + std::to_string(options.max_bytes) + " bytes");
    }
    ckks::read_file(path, [&](std::istream& is) { r.part(p, is); });
  }
  return r.finish();
}

}  // namespace hecnn::he
