#include "he/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"

namespace hecnn::he {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Version 2: header and whole-file checksums, dataset size; version 1 (no checksums) is refused.
constexpr std::uint16_t kVersion = 2;
constexpr std::uint32_t kMaxHeader = 1u << 20;
constexpr std::size_t kSum = ckks::Checksum::kBytes;

json shape_json(const nn::Shape& s) { return {s.c, s.h, s.w}; }
nn::Shape shape_from(const json& j) { return {j.at(0).get<int>(), j.at(1).get<int>(), j.at(2).get<int>()}; }

std::string stream_magic(const std::string& kind) { return kind == "query" ? "HCNQ" : "HCNR"; }

// The batches, as a writer must announce them and a reader accepts them: at least one, none empty
// or larger than max_batch, contiguous, within the dataset when its size is known.
void check_batches(const StreamHeader& h, const std::string& path, std::size_t max_batch) {
  if (h.batches.empty() || h.batches.size() > 100000) throw Error(path + ": implausible number of batches");
  for (std::size_t i = 0; i < h.batches.size(); ++i) {
    const auto& b = h.batches[i];
    if (b.count == 0 || b.count > max_batch) throw Error(path + ": a batch holds more images than the keys' batch size");
    if (b.first > (std::size_t{1} << 40)) throw Error(path + ": implausible image index");
    if (i > 0 && b.first != h.batches[i - 1].first + h.batches[i - 1].count) {
      throw Error(path + ": the batches are not contiguous (batch " + std::to_string(i + 1) + " starts at image " +
                  std::to_string(b.first) + ")");
    }
  }
  if (h.dataset_size != 0 && h.batches.back().first + h.batches.back().count > h.dataset_size) {
    throw Error(path + ": image indices beyond the " + std::to_string(h.dataset_size) + " images of its dataset");
  }
}

// The bytes of the file before the header: magic, version and header length.
std::string prefix_bytes(const std::string& magic, std::uint16_t version, std::uint32_t len) {
  std::string p = magic;
  p.append(reinterpret_cast<const char*>(&version), 2);
  p.append(reinterpret_cast<const char*>(&len), 4);
  return p;
}

}  // namespace

KeyInfo read_key_info(const std::string& dir) {
  const std::string path = (fs::path(dir) / "keys.json").string();
  constexpr std::uint64_t kMaxKeysJson = 1 << 20;
  if (std::filesystem::exists(path) && regular_file_size(path, "key description") > kMaxKeysJson) {
    throw Error(path + ": larger than " + std::to_string(kMaxKeysJson) + " bytes: not a keys.json made by hecnn keygen");
  }
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + path + " (not a key directory made by hecnn keygen?)");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_key_info(text, path);
}

KeyFiles generate_keys(const HePlan& plan, const std::string& model_path, const std::string& dir, bool replace) {
  return KeyBundle::generate(plan, model_path).save_directory(dir, replace);
}

KeyFiles generate_keys(const ckks::CkksParameters& params, const KeyRequirements& need, const ClientSpec& spec,
                       const std::string& model_path, const std::string& dir, bool replace) {
  return KeyBundle::generate(params, need, spec, model_path).save_directory(dir, replace);
}

ServerKeys load_server_keys(const std::string& dir) {
  KeyReadOptions o;
  o.secret = SecretPart::Ignore;
  KeyBundle b = KeyBundle::load_directory(dir, o);
  ServerKeys k;
  k.info = b.info();
  k.ctx = b.context();
  k.keys = b.take_evaluation_keys();
  return k;
}

ClientKeys load_client_keys(const std::string& dir) {
  KeyReadOptions o;
  o.secret = SecretPart::Require;
  const KeyBundle b = KeyBundle::load_directory(dir, o);
  ClientKeys k;
  k.info = b.info();
  k.ctx = b.context();
  k.secret = b.secret_key();
  return k;
}

void check_dataset_name(const StreamHeader& h, const std::string& path, const std::string& dataset) {
  if (h.dataset.empty()) throw Error(path + ": does not name the dataset its images came from, so its labels are unknown");
  if (h.dataset != dataset) {
    throw Error(path + ": holds images of the '" + h.dataset + "' dataset, not '" + dataset + "'");
  }
}

void check_dataset(const StreamHeader& h, const std::string& path, const std::string& dataset, std::size_t size) {
  check_dataset_name(h, path, dataset);
  if (h.dataset_size != 0 && h.dataset_size != size) {
    throw Error(path + ": its images came from a " + h.dataset + " test set of " + std::to_string(h.dataset_size) +
                " images; the labels given have " + std::to_string(size) + " (another copy of the dataset?)");
  }
  for (const auto& b : h.batches) {
    if (b.first + b.count > size) {
      throw Error(path + ": images " + std::to_string(b.first) + "-" + std::to_string(b.first + b.count - 1) +
                  " are beyond the " + std::to_string(size) + " images of " + dataset);
    }
  }
}

// Passes every byte written on to `out` and into the file checksum.
class StreamWriter::HashingBuf : public std::streambuf {
 public:
  HashingBuf(std::streambuf* out, ckks::Checksum& sum) : out_(out), sum_(sum) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    sum_.update(s, static_cast<std::size_t>(n));
    return out_->sputn(s, n);
  }
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    const char c = traits_type::to_char_type(ch);
    return xsputn(&c, 1) == 1 ? ch : traits_type::eof();
  }
  int sync() override { return out_->pubsync(); }

 private:
  std::streambuf* out_;
  ckks::Checksum& sum_;
};

StreamWriter::StreamWriter(const std::string& path, const StreamHeader& h, ckks::ContextPtr ctx)
    : path_(path), header_(h), ctx_(std::move(ctx)) {
  if (h.kind != "query" && h.kind != "result") throw Error(path + ": unknown kind '" + h.kind + "'");
  check_batches(h, path, ctx_->params().max_slots());
  json j;
  j["kind"] = h.kind;
  j["key_id"] = h.key_id;
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(h.params_id));
  j["params_id"] = id;
  j["shape"] = shape_json(h.shape);
  j["per_batch"] = h.per_batch;
  j["dataset"] = h.dataset;
  j["dataset_size"] = h.dataset_size;
  j["batches"] = json::array();
  for (const auto& b : h.batches) j["batches"].push_back({{"first", b.first}, {"count", b.count}});
  const std::string s = j.dump();
  file_ = std::make_unique<AtomicFile>(path);
  sum_ = std::make_unique<ckks::Checksum>();
  buf_ = std::make_unique<HashingBuf>(file_->stream().rdbuf(), *sum_);
  os_ = std::make_unique<std::ostream>(buf_.get());
  const std::string prefix = prefix_bytes(stream_magic(h.kind), kVersion, static_cast<std::uint32_t>(s.size()));
  ckks::Checksum header_sum;
  header_sum.update(prefix.data(), prefix.size());
  header_sum.update(s.data(), s.size());
  const auto digest = header_sum.final();
  os_->write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  os_->write(s.data(), static_cast<std::streamsize>(s.size()));
  os_->write(reinterpret_cast<const char*>(digest.data()), static_cast<std::streamsize>(digest.size()));
}

StreamWriter::~StreamWriter() = default;

void StreamWriter::write_batch(const std::vector<ckks::Ciphertext>& cts) {
  if (!file_) throw Error(path_ + ": already closed");
  if (written_ >= header_.batches.size()) throw Error(path_ + ": more batches than announced");
  if (cts.size() != header_.per_batch) throw Error(path_ + ": a batch must hold " + std::to_string(header_.per_batch) + " ciphertexts");
  for (const auto& c : cts) ckks::save(*os_, *ctx_, c, true);
  ++written_;
  if (!*os_) throw Error("writing '" + path_ + "' failed (disk full?)");
}

void StreamWriter::close() {
  if (!file_) throw Error(path_ + ": already closed");
  if (written_ != header_.batches.size()) throw Error(path_ + ": fewer batches written than announced");
  os_->flush();
  if (!*os_) throw Error("writing '" + path_ + "' failed (disk full?)");
  const auto digest = sum_->final();
  file_->stream().write(reinterpret_cast<const char*>(digest.data()), static_cast<std::streamsize>(digest.size()));
  os_.reset();
  buf_.reset();
  file_->commit();
  file_.reset();
}

namespace {
// The path, once it is known to name a regular file (opening a FIFO would block).
const std::string& regular(const std::string& path, const std::string& what) {
  check_regular_file(path, what);
  return path;
}
}  // namespace

StreamReader::StreamReader(const std::string& path, const std::string& kind, const KeyInfo& keys, ckks::ContextPtr ctx)
    : path_(path), ctx_(std::move(ctx)), is_(regular(path, kind + " file"), std::ios::binary) {
  if (!is_) throw Error("cannot open '" + path + "' for reading");
  char magic[4] = {};
  std::uint16_t version = 0;
  std::uint32_t len = 0;
  is_.read(magic, 4);
  is_.read(reinterpret_cast<char*>(&version), 2);
  is_.read(reinterpret_cast<char*>(&len), 4);
  const std::string want = stream_magic(kind), other_kind = kind == "query" ? "result" : "query";
  if (!is_ || std::string(magic, 4) != want) {
    throw Error(path + ": not a hecnn " + kind + " file" +
                (std::string(magic, 4) == stream_magic(other_kind) ? " (it is a " + other_kind + " file)" : ""));
  }
  if (version == 1) {
    throw Error(path + ": format version 1 (its header has no checksum) is no longer read; make the " + kind +
                " again with this hecnn");
  }
  if (version != kVersion) throw Error(path + ": format version " + std::to_string(version) + " is not supported");
  if (len == 0 || len > kMaxHeader) throw Error(path + ": corrupted header");
  std::string s(len, '\0');
  ckks::Checksum::Digest stored{};
  if (!is_.read(s.data(), len) || !is_.read(reinterpret_cast<char*>(stored.data()), kSum)) {
    throw Error(path + ": truncated header");
  }
  // The header is used only once its checksum matches.
  {
    const std::string prefix = prefix_bytes(want, version, len);
    ckks::Checksum sum;
    sum.update(prefix.data(), prefix.size());
    sum.update(s.data(), s.size());
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzz builds only: let the fuzzer reach the parser
    if (sum.final() != stored) throw Error(path + ": the header is corrupted or was edited (checksum mismatch)");
#endif
  }
  // So is every batch: the whole file's checksum is checked before the first one is read.
  const std::uint64_t body_start = static_cast<std::uint64_t>(is_.tellg());
  is_.seekg(0, std::ios::end);
  const std::uint64_t size = static_cast<std::uint64_t>(is_.tellg());
  if (size < body_start + kSum) throw Error(path + ": truncated (no checksum at the end)");
  data_end_ = size - kSum;
  {
    is_.seekg(0);
    ckks::Checksum sum;
    std::vector<char> chunk(1 << 20);
    for (std::uint64_t left = data_end_; left > 0;) {
      const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, chunk.size()));
      if (!is_.read(chunk.data(), n)) throw Error(path + ": read error");
      sum.update(chunk.data(), static_cast<std::size_t>(n));
      left -= static_cast<std::uint64_t>(n);
    }
    ckks::Checksum::Digest trailer{};
    if (!is_.read(reinterpret_cast<char*>(trailer.data()), kSum)) throw Error(path + ": truncated (no checksum at the end)");
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzz builds only: let the fuzzer reach the parser
    if (sum.final() != trailer) throw Error(path + ": truncated or corrupted (the checksum of the file does not match)");
#endif
    is_.seekg(static_cast<std::streamoff>(body_start));
  }
  try {
    const json j = json::parse(s);
    header_.kind = j.at("kind").get<std::string>();
    header_.key_id = j.at("key_id").get<std::string>();
    header_.params_id = std::stoull(j.at("params_id").get<std::string>(), nullptr, 16);
    header_.shape = shape_from(j.at("shape"));
    header_.per_batch = j.at("per_batch").get<std::size_t>();
    header_.dataset = j.at("dataset").get<std::string>();
    header_.dataset_size = j.at("dataset_size").get<std::size_t>();
    for (const auto& b : j.at("batches")) header_.batches.push_back({b.at("first").get<std::size_t>(), b.at("count").get<std::size_t>()});
  } catch (const std::exception& e) {
    throw Error(path + ": corrupted header (" + e.what() + ")");
  }
  if (header_.kind != kind) throw Error(path + ": holds a " + header_.kind + ", expected a " + kind);
  if (header_.params_id != ctx_->params().id() || header_.params_id != keys.spec.params_id) {
    throw Error(path + ": made with other encryption parameters than the keys in use (" + kind + " for another key set "
                "or model)");
  }
  if (header_.key_id != keys.key_id) {
    throw Error(path + ": made with other keys (key id " + header_.key_id + ", these keys are " + keys.key_id + ")");
  }
  if (header_.per_batch == 0 || header_.per_batch > (1u << 24)) throw Error(path + ": implausible batch size");
  check_batches(header_, path, keys.spec.batch_size ? keys.spec.batch_size : ctx_->params().max_slots());
}

std::vector<ckks::Ciphertext> StreamReader::read_batch() {
  if (read_ >= header_.batches.size()) throw Error(path_ + ": no more batches");
  std::vector<ckks::Ciphertext> out;
  out.reserve(header_.per_batch);
  try {
    for (std::size_t i = 0; i < header_.per_batch; ++i) out.push_back(ckks::load_ciphertext(is_, *ctx_));
  } catch (const Error& e) {
    throw Error(path_ + ": batch " + std::to_string(read_ + 1) + ", ciphertext " + std::to_string(out.size() + 1) + ": " + e.what());
  }
  ++read_;
  return out;
}

void StreamReader::finish() {
  if (read_ != header_.batches.size()) throw Error(path_ + ": not all batches were read");
  if (static_cast<std::uint64_t>(is_.tellg()) != data_end_) throw Error(path_ + ": unexpected data after the last batch");
}

}  // namespace hecnn::he
