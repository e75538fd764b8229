#include "fuzz_util.h"

#include <filesystem>

namespace hecnn::fuzz {

namespace fs = std::filesystem;

namespace {
struct Scratch {
  std::string path;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    path = (fs::path(tmp ? tmp : "/tmp") / ("hecnn-fuzz-" + std::to_string(::getpid()))).string();
    fs::create_directories(path);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

const std::string& scratch_dir() {
  static const Scratch s;
  return s.path;
}

std::string write_scratch(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string p = scratch_dir() + "/" + name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p;
}

}  // namespace hecnn::fuzz

#include "he/batch/engine.h"
#include "he/files.h"
#include "nn/model.h"

namespace hecnn::fuzz {

const TinySetup& tiny_setup() {
  static const TinySetup s = [] {
    TinySetup t;
    nn::Model m = nn::Model::from_architecture(nlohmann::json::parse(
        R"({"input": [1, 4, 4], "layers": [{"type": "flatten"}, {"type": "dense", "units": 3},
            {"type": "activation", "fn": "square"}, {"type": "dense", "units": 2}]})"));
    const auto shapes = m.shapes(false);
    nn::Shape in = m.input;
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
      for (const auto& [name, shape] : nn::Model::expected_params(m.layers[i], in)) {
        nn::Tensor tensor(shape, 0.25f);
        m.layers[i].params[name] = tensor;
      }
      in = shapes[i];
    }
    he::CompileOptions o;
    o.log_n = 10;
    o.scale_bits = 30;
    o.allow_insecure = true;
    const he::HePlan plan = he::compile(m, o);
    t.key_dir = scratch_dir() + "/keys";
    he::generate_keys(plan, "tiny", t.key_dir);
    const he::ClientKeys ck = he::load_client_keys(t.key_dir);
    he::StreamHeader h;
    h.kind = "query";
    h.key_id = ck.info.key_id;
    h.params_id = ck.info.spec.params_id;
    h.shape = m.input;
    h.per_batch = ck.info.spec.input_ciphertexts;
    h.dataset = "tiny";
    h.batches = {{0, 2}};
    t.query_path = scratch_dir() + "/query.bin";
    const he::batch::Client client(ck.info.spec, ck.ctx, ck.secret);
    const std::vector<float> images(32, 0.5f);
    he::StreamWriter w(t.query_path, h, ck.ctx);
    w.write_batch(client.encrypt(images.data(), 2));
    w.close();
    return t;
  }();
  return s;
}

}  // namespace hecnn::fuzz
