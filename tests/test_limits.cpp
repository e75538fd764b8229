// Hostile and absurd inputs (issue 14): every reader refuses, with a hecnn::Error naming the file
// and the problem, a small input that would cost unbounded time or memory, before allocating what
// it declares; values that would give silently wrong answers are refused likewise.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <tuple>

#include "common/error.h"
#include "common/threads.h"
#include "he/files.h"
#include "he/memory.h"
#include "he/plan.h"
#include "nn/dataset.h"
#include "nn/forward.h"
#include "nn/keras.h"
#include "nn/limits.h"
#include "nn/safetensors.h"
#include "approx/fit.h"
#include "test_util.h"

using namespace hecnn;
using hecnn::test::expect_error_mentioning;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using hecnn::test::TempDir;

void write_bytes(const std::string& path, const std::string& b) { std::ofstream(path, std::ios::binary) << b; }

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// A safetensors file from a header object and a data section, written as is (no validation).
std::string raw_safetensors(const json& header, const std::string& data) {
  const std::string h = header.dump();
  return le64(h.size()) + h + data;
}

// Runs f, which must throw hecnn::Error mentioning every needle, within `seconds`.
void expect_quick_error(const std::function<void()>& f, const std::vector<std::string>& needles, double seconds = 5) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needles.front() << "'";
  } catch (const hecnn::Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, seconds) << "refusing took " << s << " s";
}

json conv(int filters, int k) { return {{"type", "conv2d"}, {"filters", filters}, {"kernel", k}}; }

// A one-layer model file: conv of `filters` 1x1 filters over a 1x28x28 input, weights all 0.01.
std::string conv_model_file(int filters) {
  const json arch = {{"input", {1, 28, 28}}, {"layers", {conv(filters, 1)}}};
  const std::uint64_t bytes = 4ull * static_cast<std::uint64_t>(filters);
  json header = {{"__metadata__", {{"hecnn.architecture", arch.dump()}}},
                 {"0.weight", {{"dtype", "F32"}, {"shape", {filters, 1, 1, 1}}, {"data_offsets", {0, bytes}}}}};
  std::string data(bytes, '\0');
  const float v = 0.01f;
  for (std::uint64_t i = 0; i < bytes; i += 4) std::memcpy(data.data() + i, &v, 4);
  return raw_safetensors(header, data);
}

nn::Model tiny_model() {
  nn::Model m = nn::Model::from_architecture(
      {{"input", {1, 4, 4}},
       {"layers",
        {conv(2, 3), {{"type", "batchnorm"}}, {{"type", "activation"}, {"fn", "square"}}, {{"type", "flatten"}},
         {{"type", "dense"}, {"units", 3}}}}});
  nn::Shape in = m.input;
  const auto shapes = m.shapes(false);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [name, shape] : nn::Model::expected_params(m.layers[i], in)) m.layers[i].params[name] = nn::Tensor(shape, 0.5f);
    in = shapes[i];
  }
  m.validate();
  return m;
}

}  // namespace

// --- options of the compile step and the thread count -------------------------------------------

TEST(Limits, CompileOptionsBoundedBeforeAnyArithmetic) {
  int scale = 0;
  he::CompileOptions o;
  o.extra_levels = 1000000;  // was: an int overflow and a prime search without end
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--extra-levels", "between 0 and 63"});
  o.allow_insecure = true;
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--extra-levels"});
  o.extra_levels = -2;
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--extra-levels", "-2"});
  o.extra_levels = 62;  // 3 + 62 > 63
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"more than the 63"});
  o.extra_levels = 0;
  expect_quick_error([&] { he::choose_parameters(1000000, o, &scale); }, {"1000000 levels", "shallower"});
  o.log_n = 40;
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--log-n must be between 10 and 16"});
  o.log_n = -1;
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--log-n"});
  o.log_n = 0;
  o.scale_bits = 70;
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--scale-bits must be between 20 and 58"});
  o.scale_bits = -40;
  expect_quick_error([&] { he::choose_parameters(3, o, &scale); }, {"--scale-bits"});
  // compile() refuses the options before compiling the model.
  he::CompileOptions bad;
  bad.extra_levels = 1 << 30;
  expect_quick_error([&] { he::compile(tiny_model(), bad); }, {"--extra-levels"});
  // The largest accepted chain still builds (insecure, small ring).
  he::CompileOptions most;
  most.log_n = 12;
  most.scale_bits = 30;
  most.allow_insecure = true;
  most.extra_levels = 60;
  EXPECT_EQ(he::choose_parameters(3, most, &scale).max_level(), 63u);
}

TEST(Limits, ThreadCount) {
  expect_error_mentioning([] { hecnn::set_num_threads(100000); }, "thread count must be from 0");
  expect_error_mentioning([] { hecnn::set_num_threads(-1); }, "thread count");
  EXPECT_GE(hecnn::max_threads(), 64);
  EXPECT_LE(hecnn::max_threads(), 1024);
  hecnn::set_num_threads(2);
  EXPECT_EQ(hecnn::num_threads(), 2);
  hecnn::set_num_threads(0);
}

// OMP_NUM_THREADS is bounded like --threads: a malformed or absurd value is an error naming it.
TEST(Limits, ThreadEnvironment) {
  const char* before = std::getenv("OMP_NUM_THREADS");
  const std::string saved = before ? before : "";
  const auto with = [](const char* v) {
    ::setenv("OMP_NUM_THREADS", v, 1);
    hecnn::check_thread_environment();
  };
  for (const char* bad : {"100000", "0", "-1", "abc", "", "4x", "2,", "4,100000", " ", "99999999999999999999"}) {
    SCOPED_TRACE(bad);
    expect_error_mentioning([&] { with(bad); }, "OMP_NUM_THREADS='" + std::string(bad) + "' is not a thread count");
  }
  with("1");
  with("4");
  with(" 8 ");  // blanks, as libgomp allows
  with("4,2");  // nesting levels
  with(std::to_string(hecnn::max_threads()).c_str());
  expect_error_mentioning([&] { with(std::to_string(hecnn::max_threads() + 1).c_str()); }, "from 1 to");
  ::unsetenv("OMP_NUM_THREADS");
  hecnn::check_thread_environment();  // unset: all cores
  if (before) ::setenv("OMP_NUM_THREADS", saved.c_str(), 1);
}

// --- the default memory limit -------------------------------------------------------------------

// Sets an environment variable for the scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* v = std::getenv(name)) saved_ = v;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (saved_) ::setenv(name_, saved_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST(MemoryLimit, CgroupDirectory) {
  TempDir t;
  const ScopedEnv env("HECNN_CGROUP_DIR", t.dir());
  constexpr std::size_t MiB = std::size_t{1} << 20;
  // cgroup v2: memory.max less memory.current (MemAvailable is larger on any machine running this).
  write_bytes(t.file("memory.max"), std::to_string(200 * MiB) + "\n");
  write_bytes(t.file("memory.current"), std::to_string(120 * MiB) + "\n");
  he::MemoryLimit m = he::system_memory_limit();
  EXPECT_EQ(m.bytes, 80 * MiB);
  EXPECT_EQ(m.source, "cgroup " + t.file("memory.max"));
  EXPECT_EQ(he::available_memory(), 80 * MiB);
  // Usage beyond the limit: nothing left.
  write_bytes(t.file("memory.current"), std::to_string(300 * MiB));
  EXPECT_EQ(he::system_memory_limit().bytes, 0u);
  // "max": no cgroup limit; the rest (MemAvailable at least) decides.
  write_bytes(t.file("memory.max"), "max\n");
  m = he::system_memory_limit();
  EXPECT_NE(m.source.rfind("cgroup", 0), 0u) << m.source;
  EXPECT_GT(m.bytes, 0u);
  // Malformed values are errors naming the file.
  write_bytes(t.file("memory.max"), "12abc");
  expect_error_mentioning([] { he::system_memory_limit(); }, "memory.max: '12abc' is not a byte count");
  write_bytes(t.file("memory.max"), std::to_string(200 * MiB));
  write_bytes(t.file("memory.current"), "-5");
  expect_error_mentioning([] { he::system_memory_limit(); }, "memory.current: '-5' is not a byte count");
  fs::remove(t.file("memory.current"));
  expect_error_mentioning([] { he::system_memory_limit(); }, "memory.current: cannot be read");
  // cgroup v1: memory.limit_in_bytes less memory.usage_in_bytes; its "no limit" is a huge number.
  fs::remove(t.file("memory.max"));
  write_bytes(t.file("memory.limit_in_bytes"), std::to_string(100 * MiB));
  write_bytes(t.file("memory.usage_in_bytes"), std::to_string(36 * MiB));
  m = he::system_memory_limit();
  EXPECT_EQ(m.bytes, 64 * MiB);
  EXPECT_EQ(m.source, "cgroup " + t.file("memory.limit_in_bytes"));
  write_bytes(t.file("memory.limit_in_bytes"), "9223372036854771712");
  EXPECT_NE(he::system_memory_limit().source.rfind("cgroup", 0), 0u);
  // A directory without either is a mistake worth saying.
  fs::remove(t.file("memory.limit_in_bytes"));
  expect_error_mentioning([] { he::system_memory_limit(); }, "holds neither memory.max");
}

// ulimit -d and -v: the limit less what the process already uses (VmData, VmSize).
TEST(MemoryLimit, ResourceLimits) {
  TempDir t;
  const ScopedEnv env("HECNN_CGROUP_DIR", t.dir());
  write_bytes(t.file("memory.max"), "max");
  constexpr std::size_t MiB = std::size_t{1} << 20;
  const auto status_kib = [](const std::string& key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
    }
    return 0ull;
  };
  for (const auto& [resource, key, source] : {std::tuple<int, const char*, const char*>{RLIMIT_DATA, "VmData", "ulimit -d"},
                                              {RLIMIT_AS, "VmSize", "ulimit -v"}}) {
    SCOPED_TRACE(source);
    rlimit saved{};
    ASSERT_EQ(::getrlimit(resource, &saved), 0);
    const std::size_t used = status_kib(key);
    ASSERT_GT(used, 0u);
    rlimit lower = saved;
    lower.rlim_cur = used + 64 * MiB;
    if (saved.rlim_max != RLIM_INFINITY && lower.rlim_cur > saved.rlim_max) GTEST_SKIP() << "hard limit too low";
    ASSERT_EQ(::setrlimit(resource, &lower), 0);
    const he::MemoryLimit m = he::system_memory_limit();
    ASSERT_EQ(::setrlimit(resource, &saved), 0);
    EXPECT_EQ(m.source, source);
    EXPECT_LE(m.bytes, 64 * MiB);
    EXPECT_GT(m.bytes, 32 * MiB);  // what the process used was subtracted, not more
  }
}

// --- model files --------------------------------------------------------------------------------

TEST(Limits, SafetensorsRangesCheckedBeforeDecoding) {
  TempDir t;
  // 2,000 tensors of 1M floats each, all on the same 4 MiB: was decoded tensor by tensor (8 GiB)
  // before the overlap check.
  const std::uint64_t bytes = 4u << 20;
  json header = json::object();
  for (int i = 0; i < 2000; ++i) {
    header[std::string("t").append(std::to_string(i))] = {{"dtype", "F32"}, {"shape", {1 << 20}}, {"data_offsets", {0, bytes}}};
  }
  write_bytes(t.file("overlap.safetensors"), raw_safetensors(header, std::string(bytes, '\0')));
  expect_quick_error([&] { nn::read_safetensors(t.file("overlap.safetensors")); }, {"overlap.safetensors", "overlaps"});
  // A gap between tensors, and too many tensors.
  header = {{"a", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}},
            {"b", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {8, 12}}}}};
  write_bytes(t.file("gap.safetensors"), raw_safetensors(header, std::string(12, '\0')));
  expect_quick_error([&] { nn::read_safetensors(t.file("gap.safetensors")); }, {"gap"});
  header = json::object();
  for (std::size_t i = 0; i <= nn::limits::kMaxTensors; ++i) {
    header[std::to_string(i)] = {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {0, 0}}};
  }
  write_bytes(t.file("many.safetensors"), raw_safetensors(header, ""));
  expect_quick_error([&] { nn::read_safetensors(t.file("many.safetensors")); }, {"tensors, more than the 65536 accepted"});
  // A header nested deeper than any model needs.
  {
    std::string deep(100000, '[');
    write_bytes(t.file("deep.safetensors"), le64(deep.size()) + deep);
  }
  expect_quick_error([&] { nn::read_safetensors(t.file("deep.safetensors")); }, {"deep.safetensors", "nested"});
}

TEST(Limits, TensorIndexOverflowIsAClearError) {
  TempDir t;
  nn::SafetensorsFile f;
  f.metadata["hecnn.architecture"] = json({{"input", {1, 2, 2}}, {"layers", {{{"type", "flatten"}}}}}).dump();
  f.tensors["99999999999999999999999999.weight"] = nn::Tensor({1});
  nn::write_safetensors(t.file("index.safetensors"), f);
  expect_error_mentioning([&] { nn::load_model(t.file("index.safetensors")); }, "index.safetensors: tensor '99999999999999999999999999.weight' does not belong");
}

TEST(Limits, ArchitectureSizesBoundedAtLoad) {
  TempDir t;
  // 256 KiB declaring a 65,536-filter convolution: 51 M values per image (was 15 GiB in plan/eval).
  write_bytes(t.file("wide.safetensors"), conv_model_file(65536));
  expect_quick_error([&] { nn::load_model(t.file("wide.safetensors")); }, {"wide.safetensors", "filters 65536 is out of range"});
  // Within the filter bound, but 4096 x 28 x 28 values per output.
  write_bytes(t.file("wide2.safetensors"), conv_model_file(4096));
  expect_quick_error([&] { nn::load_model(t.file("wide2.safetensors")); }, {"wide2.safetensors", "values"});
  // The architecture alone (no tensors needed).
  auto arch_error = [](const json& arch, const std::string& needle) {
    expect_quick_error([&] { nn::Model::from_architecture(arch).shapes(false); }, {needle});
  };
  arch_error({{"input", {1, 28, 28}}, {"layers", {conv(8, 65)}}}, "kernel height 65 is out of range");
  arch_error({{"input", {1, 28, 28}}, {"layers", {{{"type", "conv2d"}, {"filters", 2}, {"kernel", 3}, {"stride", 2147483647}}}}},
             "stride");
  arch_error({{"input", {1, 28, 28}}, {"layers", {{{"type", "avgpool2d"}, {"pool", 100000}}}}}, "pool size");
  arch_error({{"input", {5000, 28, 28}}, {"layers", json::array()}}, "too large");
  arch_error({{"input", {1, 2048, 2048}}, {"layers", json::array()}}, "too large");
  arch_error({{"input", {1, 64, 32}}, {"layers", {{{"type", "flatten"}}, {{"type", "dense"}, {"units", 65536}}}}},
             "multiply-adds");
  arch_error({{"input", {1, 2, 2}}, {"layers", {{{"type", "flatten"}}, {{"type", "dense"}, {"units", 2000000}}}}}, "units");
  // Integers beyond int are refused, not wrapped (4294967297 would read as 1).
  EXPECT_EQ(nn::Model::from_architecture({{"input", {1, 28, 28}}, {"layers", {conv(1, 1)}}}).output(), (nn::Shape{1, 28, 28}));
  json wrap = {{"input", {1, 28, 28}}, {"layers", {{{"type", "conv2d"}, {"filters", 4294967297ull}, {"kernel", 1}}}}};
  expect_error_mentioning([&] { nn::Model::from_architecture(wrap); }, "'filters' must be an integer");
  json frac = {{"input", {1, 28.5, 28}}, {"layers", json::array()}};
  expect_error_mentioning([&] { nn::Model::from_architecture(frac); }, "'input' must be an integer");
  // Too many layers: refused before any activation is fitted.
  json many = {{"input", {1, 4, 4}}, {"layers", json::array()}};
  for (int i = 0; i < 100000; ++i) many["layers"].push_back({{"type", "activation"}, {"fn", "swish:deg8:range4"}});
  expect_quick_error([&] { nn::Model::from_architecture(many); }, {"100000 layers"});
}

TEST(Limits, NonFiniteAndNegativeVarianceRefused) {
  TempDir t;
  nn::Model m = tiny_model();
  m.layers[1].params["running_var"].data[1] = -0.5f;
  nn::SafetensorsFile f;
  f.metadata["hecnn.architecture"] = m.architecture().dump();
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [role, tensor] : m.layers[i].params) f.tensors[std::to_string(i) + "." + role] = tensor;
  }
  nn::write_safetensors(t.file("negvar.safetensors"), f);
  expect_error_mentioning([&] { nn::load_model(t.file("negvar.safetensors")); }, "tensor '1.running_var' holds a negative variance");
  expect_error_mentioning([&] { nn::check_parameter_values(m); }, "1.running_var");
  // Non-finite values in a file: refused with the tensor's name.
  f.tensors["1.running_var"].data[1] = 1.0f;
  f.tensors["4.weight"].data[2] = std::numeric_limits<float>::quiet_NaN();
  nn::write_safetensors(t.file("nan.safetensors"), f);
  expect_error_mentioning([&] { nn::load_model(t.file("nan.safetensors")); }, "tensor '4.weight' holds a non-finite value");
  // A model whose outputs overflow: evaluate refuses to report an accuracy.
  nn::Model big = nn::Model::from_architecture({{"input", {1, 1, 1}},
                                                {"layers",
                                                 {{{"type", "flatten"}},
                                                  {{"type", "dense"}, {"units", 1}},
                                                  {{"type", "activation"}, {"fn", "square"}},
                                                  {{"type", "activation"}, {"fn", "square"}},
                                                  {{"type", "activation"}, {"fn", "square"}},
                                                  {{"type", "activation"}, {"fn", "square"}}}}});  // (3e38)^16
  big.layers[1].params["weight"] = nn::Tensor({1, 1}, 3e38f);
  nn::Dataset d;
  d.shape = {1, 1, 1};
  d.classes = 1;
  d.images.assign(40, 1.0f);
  d.labels.assign(40, 0);
  expect_error_mentioning([&] { nn::evaluate(big, d); }, "not finite");
}

TEST(Limits, ActivationSpecsBounded) {
  expect_quick_error([] { approx::parse_activation_spec("gelu:deg32:range8:points10000000"); },
                     {"points 10000000 is out of range (1 to 100000)"});
  expect_quick_error([] { approx::parse_activation_spec("swish:deg1e300"); }, {"degree"});
  expect_quick_error([] { approx::parse_activation_spec("swish:deg4.5"); }, {"not a whole number"});
  expect_quick_error([] { approx::parse_activation_spec("swish:deg4:range1e9"); }, {"range r is too large"});
  expect_quick_error([] { approx::parse_activation_spec("swish:deg4:sigma1e9:lsq-normal"); }, {"sigma"});
  expect_quick_error([] { approx::parse_activation_spec("swish:deg4:" + std::string(1000, 'x')); }, {"characters"});
  approx::FitOptions o;
  o.points = 10'000'000;  // the command line's --points reaches the same check
  expect_quick_error([&] { approx::validate(o); }, {"100000 points"});
  // The most expensive accepted fit stays cheap.
  const auto t0 = std::chrono::steady_clock::now();
  approx::fit("gelu", approx::parse_activation_spec("gelu:deg32:range8:points100000").options);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);  // 0.4 s unloaded
  // In a model's metadata: refused at load, naming the file.
  TempDir t;
  nn::SafetensorsFile f;
  f.metadata["hecnn.architecture"] =
      json({{"input", {1, 2, 2}}, {"layers", {{{"type", "activation"}, {"fn", "gelu:deg32:range8:points10000000"}}}}}).dump();
  nn::write_safetensors(t.file("spec.safetensors"), f);
  expect_quick_error([&] { nn::load_model(t.file("spec.safetensors")); }, {"spec.safetensors", "points"});
  // Many costly fits in one model: the points of all distinct fits are bounded (identical
  // specifications are fitted once), and the most the budget allows loads in seconds.
  json fits = {{"input", {1, 2, 2}}, {"layers", json::array()}};
  for (int i = 0; i < 11; ++i) fits["layers"].push_back({{"type", "activation"}, {"fn", "gelu:deg32:range8:points" + std::to_string(99990 + i)}});
  expect_quick_error([&] { nn::Model::from_architecture(fits); }, {"points in all"});
  fits["layers"] = json::array();
  for (int i = 0; i < 256; ++i) fits["layers"].push_back({{"type", "activation"}, {"fn", "gelu:deg32:range8:points100000"}});
  EXPECT_EQ(nn::Model::from_architecture(fits).layers.size(), 256u);
  // Explicit coefficients: bounded too.
  json coeffs = {{"input", {1, 2, 2}},
                 {"layers", {{{"type", "activation"}, {"fn", "poly"}, {"power", std::vector<double>(100000, 0.5)}}}}};
  expect_quick_error([&] { nn::Model::from_architecture(coeffs); }, {"100000 coefficients"});
}

// --- Keras --------------------------------------------------------------------------------------

namespace {

// A Keras weights file with one Dense layer "d" whose kernel is declared `rows` x `cols` (and
// written only when `write`) and whose bias has `cols` values.
void write_keras_weights(const std::string& path, hsize_t rows, hsize_t cols, bool write) {
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t g = H5Gcreate2(f, "d", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char* names[2] = {"d/kernel:0", "d/bias:0"};
  const hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, 16);
  const hsize_t two = 2;
  const hid_t aspace = H5Screate_simple(1, &two, nullptr);
  const hid_t attr = H5Acreate2(g, "weight_names", str, aspace, H5P_DEFAULT, H5P_DEFAULT);
  char buf[32] = {};
  std::strncpy(buf, names[0], 15);
  std::strncpy(buf + 16, names[1], 15);
  H5Awrite(attr, str, buf);
  H5Aclose(attr);
  H5Sclose(aspace);
  H5Tclose(str);
  const hsize_t kdims[2] = {rows, cols};
  const hid_t kspace = H5Screate_simple(2, kdims, nullptr);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t k = H5Dcreate2(g, "d/kernel:0", H5T_IEEE_F32LE, kspace, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (write) {
    std::vector<float> v(rows * cols, 0.25f);
    H5Dwrite(k, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  }
  H5Dclose(k);
  H5Sclose(kspace);
  const hsize_t bdims = cols;
  const hid_t bspace = H5Screate_simple(1, &bdims, nullptr);
  const hid_t b = H5Dcreate2(g, "d/bias:0", H5T_IEEE_F32LE, bspace, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<float> bv(cols, 0.5f);
  H5Dwrite(b, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bv.data());
  H5Dclose(b);
  H5Sclose(bspace);
  H5Pclose(lcpl);
  H5Gclose(g);
  H5Fclose(f);
}

json keras_dense_structure(int inputs, int units) {
  json input = {{"class_name", "InputLayer"}, {"config", {{"batch_input_shape", {nullptr, 1, 1, inputs}}, {"name", "in"}}}};
  json dense = {{"class_name", "Dense"}, {"config", {{"name", "d"}, {"units", units}, {"activation", "linear"}}}};
  json s;
  s["class_name"] = "Sequential";
  s["config"]["name"] = "s";
  s["config"]["layers"] = json::array({input, dense});
  return s;
}

}  // namespace

TEST(Limits, KerasShapesCheckedBeforeReading) {
  TempDir t;
  std::ofstream(t.file("s.json")) << keras_dense_structure(4, 10).dump();
  // Sanity: a consistent file imports.
  write_keras_weights(t.file("ok.h5"), 4, 10, true);
  EXPECT_EQ(nn::import_keras(t.file("s.json"), t.file("ok.h5")).output(), (nn::Shape{10, 1, 1}));
  // A kernel declared 32768 x 32768 (4 GiB) and never written: refused on its shape, unallocated.
  write_keras_weights(t.file("huge.h5"), 32768, 32768, false);
  expect_quick_error([&] { nn::import_keras(t.file("s.json"), t.file("huge.h5")); },
                     {"huge.h5", "has shape [32768, 32768], the structure (kernel and bias) needs [4, 10]"});
  // The right shape, never written.
  write_keras_weights(t.file("empty.h5"), 4, 10, false);
  expect_quick_error([&] { nn::import_keras(t.file("s.json"), t.file("empty.h5")); }, {"holds no data"});
  // A structure asking for an absurd layer: refused before its weights are read.
  std::ofstream(t.file("big.json")) << keras_dense_structure(4, 2000000).dump();
  expect_quick_error([&] { nn::import_keras(t.file("big.json"), t.file("huge.h5")); }, {"units"});
  // A directory as the structure file, and deep or oversized JSON.
  fs::create_directory(t.file("dir.json"));
  expect_quick_error([&] { nn::import_keras(t.file("dir.json"), t.file("ok.h5")); }, {"dir.json is a directory"});
  write_bytes(t.file("deep.json"), std::string(200000, '['));
  expect_quick_error([&] { nn::import_keras(t.file("deep.json"), t.file("ok.h5")); }, {"deep.json", "nested"});
  {
    std::ofstream big(t.file("large.json"));
    big << "[";
    for (int i = 0; i < 3'000'000; ++i) big << "1234567,";
    big << "0]";
  }
  expect_quick_error([&] { nn::import_keras(t.file("large.json"), t.file("ok.h5")); }, {"large.json", "bytes"});
}

// --- datasets -----------------------------------------------------------------------------------

namespace {

std::string be32(std::uint32_t x) {
  std::string s;
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<char>(x >> sh));
  return s;
}
std::string idx_images_header(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  return be32(0x803) + be32(n) + be32(rows) + be32(cols);
}
std::string idx_labels(std::uint32_t n) {
  std::string s = be32(0x801) + be32(n);
  for (std::uint32_t i = 0; i < n; ++i) s.push_back(static_cast<char>(i % 10));
  return s;
}
void write_gzip(const std::string& path, const std::string& head, std::size_t zeros) {
  gzFile f = gzopen(path.c_str(), "wb9");
  gzwrite(f, head.data(), static_cast<unsigned>(head.size()));
  const std::string block(1 << 20, '\0');
  for (std::size_t left = zeros; left > 0;) {
    const std::size_t n = std::min(left, block.size());
    gzwrite(f, block.data(), static_cast<unsigned>(n));
    left -= n;
  }
  gzclose(f);
}

}  // namespace

TEST(Limits, IdxBoundedByItsHeader) {
  TempDir t;
  write_bytes(t.file("t10k-labels-idx1-ubyte"), idx_labels(10));
  // A gzip bomb: the header says 10 images of 28x28, the stream inflates to 64 MiB.
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images_header(10, 28, 28), 64u << 20);
  EXPECT_LT(fs::file_size(t.file("t10k-images-idx3-ubyte.gz")), 200000u);
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); },
                     {"t10k-images-idx3-ubyte.gz", "more data than its header (10 images of 28x28) declares"});
  // A header declaring 2 GiB of pixels: refused before reading.
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images_header(1000000, 1024, 1024), 1 << 20);
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); }, {"pixels (at most"});
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images_header(10, 5000, 28), 0);
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); }, {"implausible image size"});
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images_header(0, 28, 28), 0);
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); }, {"declares 0 images"});
  // Trailing bytes after the labels.
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images_header(10, 28, 28), 10 * 28 * 28);
  write_bytes(t.file("t10k-labels-idx1-ubyte"), idx_labels(10) + "x");
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); }, {"labels-idx1-ubyte: more data"});
  write_bytes(t.file("t10k-labels-idx1-ubyte"), idx_labels(10));
  EXPECT_EQ(nn::load_dataset("mnist", nn::Split::Test, t.dir()).size(), 10u);
}

TEST(Limits, SpecialFilesRefused) {
  TempDir t;
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images_header(10, 28, 28), 10 * 28 * 28);
  // /dev/urandom as the labels (was read for 4 GiB).
  fs::create_symlink("/dev/urandom", t.file("t10k-labels-idx1-ubyte"));
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); },
                     {"t10k-labels-idx1-ubyte is a character device, not a regular file"});
  fs::remove(t.file("t10k-labels-idx1-ubyte"));
  // A FIFO (opening it would block for ever) and a directory.
  ASSERT_EQ(::mkfifo(t.file("t10k-labels-idx1-ubyte").c_str(), 0600), 0);
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); }, {"FIFO"});
  fs::remove(t.file("t10k-labels-idx1-ubyte"));
  fs::create_directory(t.file("t10k-labels-idx1-ubyte"));
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); }, {"is a directory"});
  fs::remove(t.file("t10k-labels-idx1-ubyte"));
  // A loop of symbolic links in the dataset directory.
  fs::create_symlink("t10k-labels-idx1-ubyte.gz", t.file("t10k-labels-idx1-ubyte.gz"));
  expect_quick_error([&] { nn::load_dataset("mnist", nn::Split::Test, t.dir()); },
                     {t.file("t10k-labels-idx1-ubyte.gz"), "loop of symbolic links"});
  // Model files and Keras files likewise.
  expect_quick_error([&] { nn::load_model("/dev/zero"); }, {"/dev/zero is a character device"});
  expect_quick_error([&] { nn::load_model(t.dir()); }, {"is a directory"});
  expect_quick_error([&] { nn::load_model(t.file("t10k-labels-idx1-ubyte.gz")); }, {"loop of symbolic links"});
}

TEST(Limits, CifarRecordCountsBounded) {
  TempDir t;
  auto records = [](std::size_t n) {
    std::string s;
    for (std::size_t r = 0; r < n; ++r) {
      s.push_back(static_cast<char>(r % 10));
      s.append(3072, static_cast<char>(r % 256));
    }
    return s;
  };
  // Any whole number of records from 1 to 10,000.
  write_bytes(t.file("test_batch.bin"), records(3));
  EXPECT_EQ(nn::load_dataset("cifar10", nn::Split::Test, t.dir()).size(), 3u);
  write_bytes(t.file("test_batch.bin"), records(1));
  EXPECT_EQ(nn::load_dataset("cifar10", nn::Split::Test, t.dir()).size(), 1u);
  // A partial record, an empty file, too many records.
  write_bytes(t.file("test_batch.bin"), records(3) + std::string(100, '\0'));
  expect_quick_error([&] { nn::load_dataset("cifar10", nn::Split::Test, t.dir()); },
                     {"test_batch.bin: 9319 bytes is not a whole number of CIFAR-10 records", "3 records and 100 bytes"});
  write_bytes(t.file("test_batch.bin"), "");
  expect_quick_error([&] { nn::load_dataset("cifar10", nn::Split::Test, t.dir()); }, {"test_batch.bin: empty"});
  write_bytes(t.file("test_batch.bin"), records(10001));
  expect_quick_error([&] { nn::load_dataset("cifar10", nn::Split::Test, t.dir()); }, {"more than 10000 CIFAR-10 records"});
}

TEST(Limits, UnknownDatasetRefused) {
  TempDir t;
  expect_error_mentioning([&] { nn::load_dataset("foo", nn::Split::Test, t.dir()); },
                          "unknown dataset 'foo' (known: mnist, fashion-mnist, cifar10)");
  expect_error_mentioning([&] { nn::load_dataset("", nn::Split::Test, t.dir()); }, "unknown dataset");
}

// --- keys and the server's plan -----------------------------------------------------------------

TEST(Limits, KeysJsonFieldsBounded) {
  TempDir t;
  he::CompileOptions o;
  o.log_n = 11;
  o.scale_bits = 36;
  o.allow_insecure = true;
  const nn::Model m = tiny_model();
  he::generate_keys(he::compile(m, o), "tiny", t.file("keys"));
  const std::string path = t.file("keys") + "/keys.json";
  json good;
  {
    std::ifstream in(path);
    good = json::parse(in);
  }
  ASSERT_TRUE(good.contains("spec"));  // the current format: {"key_id", "spec": {...}, "insecure", "model"}
  auto with = [&](const std::string& field, const json& v) {
    json j = good;
    j["spec"][field] = v;
    std::ofstream(path) << j.dump();
  };
  with("batch_size", 0);  // was: encrypt looping until out of memory
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"keys.json", "'batch_size' must be an integer from 1"});
  expect_quick_error([&] { he::load_server_keys(t.file("keys")); }, {"'batch_size'"});
  with("batch_size", -1);
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"'batch_size'"});
  with("batch_size", 1u << 20);  // more than the slots of N = 2^11
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"'batch_size'"});
  with("batch_size", 4096);
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"larger than the slot count"});
  with("outputs", 0);
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"'outputs'"});
  with("input", {1, 4, 100000});
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"'input'"});
  with("output_factor", nullptr);
  expect_quick_error([&] { he::load_client_keys(t.file("keys")); }, {"output_factor"});
  std::ofstream(path) << good.dump();
  EXPECT_EQ(he::load_client_keys(t.file("keys")).info.spec.batch_size, 1024u);
}

TEST(Limits, DeeperModelThanTheKeysMessage) {
  he::CompileOptions o;
  o.log_n = 11;
  o.scale_bits = 30;
  o.allow_insecure = true;
  const he::HePlan plan = he::compile(tiny_model(), o);
  nn::Model deeper = nn::Model::from_architecture(
      {{"input", {1, 4, 4}},
       {"layers",
        {conv(2, 3), {{"type", "activation"}, {"fn", "swish:deg8:range4"}}, {{"type", "flatten"}},
         {{"type", "dense"}, {"units", 3}}, {{"type", "activation"}, {"fn", "swish:deg8:range4"}},
         {{"type", "dense"}, {"units", 3}}}}});
  nn::Shape in = deeper.input;
  const auto shapes = deeper.shapes(false);
  for (std::size_t i = 0; i < deeper.layers.size(); ++i) {
    for (const auto& [name, shape] : nn::Model::expected_params(deeper.layers[i], in)) deeper.layers[i].params[name] = nn::Tensor(shape, 0.1f);
    in = shapes[i];
  }
  try {
    he::compile_for(deeper, *plan.params, plan.scale_bits);
    FAIL() << "a model deeper than the keys' parameters was accepted";
  } catch (const hecnn::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find("--log-n"), std::string::npos) << msg;  // infer has no such option
    EXPECT_NE(msg.find("keygen"), std::string::npos) << msg;
  }
}
