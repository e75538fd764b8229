// Writes the seed corpus of every harness: valid inputs of each format (and a few edge cases), one
// folder per harness under the given directory.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ckks/ckks.h"
#include "fuzz_util.h"
#include "he/files.h"
#include "nn/safetensors.h"

using namespace hecnn;
namespace fs = std::filesystem;

namespace {
void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_corpus OUT_DIR REPO_DIR\n");
    return 1;
  }
  const fs::path out = argv[1], repo = argv[2];
  // CKKS objects: one of each, prefixed with the selector byte.
  {
    ckks::ParameterOptions po;
    po.allow_insecure = true;
    const auto ctx = ckks::CkksContext::create(ckks::CkksParameters::from_bit_sizes(1024, {40, 30, 30}, {40}, po));
    ckks::KeyGenerator kg(ctx);
    ckks::CkksEncoder enc(ctx);
    ckks::Encryptor e(ctx, kg.secret_key());
    const auto pt = enc.encode(std::vector<double>{1, 2, 3}, 0x1p30);
    const auto ct = e.encrypt(pt);
    const auto save_one = [&](int sel, const std::string& name, auto&& fn) {
      std::ostringstream os;
      os << static_cast<char>(sel);
      fn(os);
      put(out / "ckks_objects", name, os.str());
    };
    save_one(0, "params", [&](std::ostream& os) { ckks::save(os, ctx->params()); });
    save_one(1, "ciphertext", [&](std::ostream& os) { ckks::save(os, *ctx, ct, true); });
    save_one(1, "ciphertext-full", [&](std::ostream& os) { ckks::save(os, *ctx, ct, false); });
    save_one(2, "plaintext", [&](std::ostream& os) { ckks::save(os, *ctx, pt); });
    save_one(3, "secret", [&](std::ostream& os) { ckks::save(os, *ctx, kg.secret_key()); });
    save_one(4, "public", [&](std::ostream& os) { ckks::save(os, *ctx, kg.create_public_key(), true); });
    save_one(5, "relin", [&](std::ostream& os) { ckks::save(os, *ctx, kg.create_relin_keys(), true); });
    save_one(6, "galois", [&](std::ostream& os) { ckks::save(os, *ctx, kg.create_galois_keys({1, -2}, false), true); });
  }
  // Key directory and query/result stream.
  const auto& tiny = fuzz::tiny_setup();
  put(out / "keys_json", "keys.json", slurp(tiny.key_dir + "/keys.json"));
  {
    const he::KeyBundle keys = he::KeyBundle::load_directory(tiny.key_dir);
    put(out / "key_bundle", "public", keys.public_bytes());
    const auto full = keys.to_bytes();
    put(out / "key_bundle", "full", std::string(full->data(), full->size()));
  }
  put(out / "stream", "query", std::string(1, '\1') + slurp(tiny.query_path));
  // Models and architectures.
  for (const char* m : {"models/mnist-swish4.safetensors"}) {
    put(out / "safetensors", fs::path(m).filename().string(), slurp((repo / m).string()));
    put(out / "architecture", "mnist.json", nn::load_model((repo / m).string()).architecture().dump());
  }
  put(out / "architecture", "teacher.json", slurp((repo / "models/teacher-28x28.json").string()));
  put(out / "architecture", "cifar.json", nn::preset_architecture("cifar-paper", "swish:deg4:range4").architecture().dump());
  // IDX: 2 images of 3x3 and their labels (raw), as the harness splits them.
  {
    std::string images = std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\x03\0\0\0\x03", 16) + std::string(18, '\x7f');
    std::string labels = std::string("\0\0\x08\x01\0\0\0\x02", 8) + std::string("\x01\x07", 2);
    put(out / "idx", "two", std::string{static_cast<char>(images.size() >> 8), static_cast<char>(images.size() & 255)} + images + labels);
  }
  // CIFAR-10: two records.
  put(out / "cifar", "two", std::string(1, '\3') + std::string(3072, '\x40') + std::string(1, '\x09') + std::string(3072, '\x80'));
  // ONNX: the PyTorch-made fixtures (every activation form, batch normalization, MatMul + Add).
  for (const auto& e : fs::directory_iterator(repo / "tests/fixtures/onnx")) {
    if (e.path().extension() == ".onnx" && e.path().filename().string().rfind("tiny-", 0) == 0) {
      put(out / "onnx", e.path().filename().string(), slurp(e.path().string()));
    }
  }
  // Keras structure JSON of PP-CNN's MNIST model.
  const fs::path keras = repo / "../shared/models/ppcnn-mnist/CKKS-swish_rg4_deg4-BN-DA_structure.json";
  if (fs::exists(keras)) put(out / "keras_structure", "ppcnn-mnist.json", slurp(keras.string()));
  std::printf("seed corpus written to %s\n", out.c_str());
  return 0;
}
