// keys.json of a key directory (the client specification, key id, flags), read by the server
// (load_server_keys) and the client (load_client_keys); the other files of the directory are valid.
#include <filesystem>

#include "fuzz_util.h"
#include "he/files.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir() + "/keys-fuzzed";
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(fuzz::tiny_setup().key_dir)) {
      fs::copy_file(e.path(), d + "/" + e.path().filename().string(), fs::copy_options::overwrite_existing);
    }
    return d;
  }();
  fs::remove(dir + "/keys.json");
  fuzz::write_scratch("keys-fuzzed/keys.json", data, size);
  fuzz::expect_clean([&] { (void)he::load_server_keys(dir); });
  fuzz::expect_clean([&] { (void)he::load_client_keys(dir); });
  return 0;
}
