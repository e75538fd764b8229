#include "he/files.h"

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "ckks/serialization.h"

namespace hecnn::he {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::uint16_t kVersion = 1;
constexpr std::uint32_t kMaxHeader = 1u << 20;

std::string hex_id() {
  const ckks::Seed s = ckks::random_seed();
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 16; ++i) {
    out += digits[s[i] >> 4];
    out += digits[s[i] & 15];
  }
  return out;
}

json shape_json(const nn::Shape& s) { return {s.c, s.h, s.w}; }
nn::Shape shape_from(const json& j) { return {j.at(0).get<int>(), j.at(1).get<int>(), j.at(2).get<int>()}; }

KeyInfo read_key_info(const std::string& dir) {
  const std::string path = (fs::path(dir) / "keys.json").string();
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + path + " (not a key directory made by hecnn keygen?)");
  try {
    const json j = json::parse(in);
    KeyInfo k;
    k.key_id = j.at("key_id").get<std::string>();
    k.spec = ClientSpec::from_json(j.at("spec"));
    k.insecure = j.at("insecure").get<bool>();
    k.model = j.value("model", "");
    return k;
  } catch (const json::exception& e) {
    throw Error(path + ": malformed (" + e.what() + ")");
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

ckks::ContextPtr load_context(const std::string& dir, const KeyInfo& info) {
  ckks::ParameterOptions po;
  po.allow_insecure = info.insecure;
  std::optional<ckks::CkksParameters> params;
  ckks::read_file((fs::path(dir) / "params.bin").string(), [&](std::istream& is) { params = ckks::load_parameters(is, po); });
  if (params->id() != info.spec.params_id) throw Error(dir + ": params.bin does not match keys.json");
  if (info.spec.batch_size > params->max_slots()) throw Error(dir + ": keys.json: the batch is larger than the slot count");
  return ckks::CkksContext::create(*params);
}

}  // namespace

KeyFiles generate_keys(const HePlan& plan, const std::string& model_path, const std::string& dir) {
  fs::create_directories(dir);
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  KeyFiles sizes;
  const fs::path d(dir);
  const std::string secret_path = (d / "secret.key").string();
  {
    // Created with mode 0600 before any secret byte is written.
    std::ofstream(secret_path, std::ios::trunc).close();
    fs::permissions(secret_path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    ckks::write_file(secret_path, [&](std::ostream& os) { ckks::save(os, *ctx, keygen.secret_key()); });
  }
  ckks::write_file((d / "params.bin").string(), [&](std::ostream& os) { ckks::save(os, *plan.params); });
  if (plan.keys.relinearization) {
    ckks::write_file((d / "relin.key").string(),
                     [&](std::ostream& os) { ckks::save(os, *ctx, keygen.create_relin_keys(), true); });
    sizes.relin_bytes = fs::file_size(d / "relin.key");
  }
  if (!plan.keys.rotations.empty()) {
    ckks::write_file((d / "galois.key").string(),
                     [&](std::ostream& os) { ckks::save(os, *ctx, keygen.create_galois_keys(plan.keys.rotations, false), true); });
    sizes.galois_bytes = fs::file_size(d / "galois.key");
  }
  json j;
  j["key_id"] = hex_id();
  j["spec"] = plan.client_spec().to_json();
  j["insecure"] = plan.params->insecure();
  j["model"] = model_path;
  std::ofstream((d / "keys.json").string()) << j.dump(2) << "\n";
  sizes.secret_bytes = fs::file_size(secret_path);
  sizes.params_bytes = fs::file_size(d / "params.bin");
  return sizes;
}

ServerKeys load_server_keys(const std::string& dir) {
  ServerKeys k;
  k.info = read_key_info(dir);
  k.ctx = load_context(dir, k.info);
  const fs::path d(dir);
  if (fs::exists(d / "relin.key")) {
    ckks::read_file((d / "relin.key").string(), [&](std::istream& is) { k.keys.relin = ckks::load_relin_keys(is, *k.ctx); });
  }
  if (fs::exists(d / "galois.key")) {
    ckks::read_file((d / "galois.key").string(), [&](std::istream& is) { k.keys.galois = ckks::load_galois_keys(is, *k.ctx); });
  }
  return k;
}

ClientKeys load_client_keys(const std::string& dir) {
  ClientKeys k;
  k.info = read_key_info(dir);
  k.ctx = load_context(dir, k.info);
  ckks::read_file((fs::path(dir) / "secret.key").string(),
                  [&](std::istream& is) { k.secret = ckks::load_secret_key(is, *k.ctx); });
  return k;
}

StreamWriter::StreamWriter(const std::string& path, const StreamHeader& h, ckks::ContextPtr ctx)
    : path_(path), header_(h), ctx_(std::move(ctx)), os_(path, std::ios::binary | std::ios::trunc) {
  if (!os_) throw Error("cannot open '" + path + "' for writing");
  json j;
  j["kind"] = h.kind;
  j["key_id"] = h.key_id;
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(h.params_id));
  j["params_id"] = id;
  j["shape"] = shape_json(h.shape);
  j["per_batch"] = h.per_batch;
  j["dataset"] = h.dataset;
  j["batches"] = json::array();
  for (const auto& b : h.batches) j["batches"].push_back({{"first", b.first}, {"count", b.count}});
  const std::string s = j.dump();
  os_.write(h.kind == "query" ? "HCNQ" : "HCNR", 4);
  os_.write(reinterpret_cast<const char*>(&kVersion), 2);
  const auto len = static_cast<std::uint32_t>(s.size());
  os_.write(reinterpret_cast<const char*>(&len), 4);
  os_.write(s.data(), static_cast<std::streamsize>(s.size()));
}

void StreamWriter::write_batch(const std::vector<ckks::Ciphertext>& cts) {
  if (written_ >= header_.batches.size()) throw Error(path_ + ": more batches than announced");
  if (cts.size() != header_.per_batch) throw Error(path_ + ": a batch must hold " + std::to_string(header_.per_batch) + " ciphertexts");
  for (const auto& c : cts) ckks::save(os_, *ctx_, c, true);
  ++written_;
  if (!os_) throw Error("writing '" + path_ + "' failed (disk full?)");
}

void StreamWriter::close() {
  if (written_ != header_.batches.size()) throw Error(path_ + ": fewer batches written than announced");
  os_.flush();
  if (!os_) throw Error("writing '" + path_ + "' failed (disk full?)");
  os_.close();
}

StreamReader::StreamReader(const std::string& path, const std::string& kind, const KeyInfo& keys, ckks::ContextPtr ctx)
    : path_(path), ctx_(std::move(ctx)), is_(path, std::ios::binary) {
  if (!is_) throw Error("cannot open '" + path + "' for reading");
  char magic[4] = {};
  std::uint16_t version = 0;
  std::uint32_t len = 0;
  is_.read(magic, 4);
  is_.read(reinterpret_cast<char*>(&version), 2);
  is_.read(reinterpret_cast<char*>(&len), 4);
  const std::string want = kind == "query" ? "HCNQ" : "HCNR";
  if (!is_ || std::string(magic, 4) != want) {
    throw Error(path + ": not a hecnn " + kind + " file" +
                (std::string(magic, 4) == (kind == "query" ? "HCNR" : "HCNQ") ? " (it is a " + std::string(kind == "query" ? "result" : "query") + " file)" : ""));
  }
  if (version != kVersion) throw Error(path + ": format version " + std::to_string(version) + " is not supported");
  if (len == 0 || len > kMaxHeader) throw Error(path + ": corrupted header");
  std::string s(len, '\0');
  if (!is_.read(s.data(), len)) throw Error(path + ": truncated header");
  try {
    const json j = json::parse(s);
    header_.kind = j.at("kind").get<std::string>();
    header_.key_id = j.at("key_id").get<std::string>();
    header_.params_id = std::stoull(j.at("params_id").get<std::string>(), nullptr, 16);
    header_.shape = shape_from(j.at("shape"));
    header_.per_batch = j.at("per_batch").get<std::size_t>();
    header_.dataset = j.value("dataset", "");
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
  if (header_.batches.empty() || header_.batches.size() > 100000) throw Error(path + ": implausible number of batches");
  if (header_.per_batch == 0 || header_.per_batch > (1u << 24)) throw Error(path + ": implausible batch size");
  for (const auto& b : header_.batches) {
    if (b.count == 0 || b.count > ctx_->params().max_slots()) throw Error(path + ": a batch holds more images than slots");
  }
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
  if (is_.peek() != std::char_traits<char>::eof()) throw Error(path_ + ": unexpected data after the last batch");
}

}  // namespace hecnn::he
