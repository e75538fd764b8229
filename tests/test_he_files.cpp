// Query, result and key files of encrypted inference (he/files.h): the client/server round trip
// through files, and the refusals (keys of another key generation, edited or truncated files,
// labels of another dataset, key directories that exist or are links, special and oversized files).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "he_test_util.h"
#include "test_util.h"
#include "he/batch/engine.h"
#include "he/packed/engine.h"
#include "he/memory.h"
#include "he/runtime.h"
#include "he/files.h"
#include "ring/aligned.h"
#include "ring/primes.h"
#include "common/threads.h"
#include "nn/forward.h"

using namespace hecnn;
namespace fs = std::filesystem;

using namespace hecnn::he_test;

TEST(HeFiles, ClientServerRoundTripAndBadInputs) {
  TempDir dir;
  const nn::Model m = with_random_params({{"input", {1, 6, 6}}, {"layers", {conv(2, 3, 1, "valid"), bn, act("swish:deg4:range4"), flat, dense(3)}}}, 6);
  const he::HePlan plan = he::compile(m, small_insecure());
  he::generate_keys(plan, "test-model", dir / "keys");
  EXPECT_TRUE(fs::exists(dir / "keys/secret.key"));
  EXPECT_EQ(fs::status(dir / "keys/secret.key").permissions() & fs::perms::group_read, fs::perms::none);

  // Client: encrypt two batches into a query file.
  const he::ClientKeys ck = he::load_client_keys(dir / "keys");
  const std::size_t count = 20;
  const std::vector<float> images = random_images(m.input, count, 3);
  he::StreamHeader h;
  h.kind = "query";
  h.key_id = ck.info.key_id;
  h.params_id = ck.info.spec.params_id;
  h.shape = m.input;
  h.per_batch = static_cast<std::size_t>(m.input.size());
  h.batches = {{0, 12}, {12, 8}};
  {
    const he::batch::Client client(ck.info.spec, ck.ctx, ck.secret);
    he::StreamWriter w(dir / "q.bin", h, ck.ctx);
    w.write_batch(client.encrypt(images.data(), 12));
    w.write_batch(client.encrypt(images.data() + 12 * static_cast<std::size_t>(m.input.size()), 8));
    w.close();
  }
  // Server: evaluation keys only.
  const he::ServerKeys sk = he::load_server_keys(dir / "keys");
  {
    he::StreamReader r(dir / "q.bin", "query", sk.info, sk.ctx);
    he::StreamHeader rh = r.header();
    rh.kind = "result";
    rh.per_batch = plan.program.outputs();
    he::StreamWriter w(dir / "r.bin", rh, sk.ctx);
    const he::batch::Engine engine(plan, sk.ctx, sk.keys);
    for (std::size_t b = 0; b < rh.batches.size(); ++b) w.write_batch(engine.run(r.read_batch()));
    r.finish();
    w.close();
  }
  // Client: decrypt and compare with the plaintext model.
  {
    he::StreamReader r(dir / "r.bin", "result", ck.info, ck.ctx);
    const he::batch::Client client(ck.info.spec, ck.ctx, ck.secret);
    for (const auto& b : r.header().batches) {
      const auto out = client.decrypt(r.read_batch(), b.count);
      for (std::size_t i = 0; i < b.count; ++i) {
        const auto plain = nn::forward(m, images.data() + (b.first + i) * static_cast<std::size_t>(m.input.size()));
        for (std::size_t k = 0; k < plain.size(); ++k) EXPECT_NEAR(out[i][k], plain[k], 1e-3 * (1 + std::fabs(plain[k])));
      }
    }
    r.finish();
  }

  // Wrong keys: another key generation for the same model and parameters.
  he::generate_keys(plan, "test-model", dir / "other");
  const he::ServerKeys other = he::load_server_keys(dir / "other");
  expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", other.info, other.ctx); }, "q.bin: made with other keys (key id");
  // A query made with other parameters.
  he::CompileOptions o2 = small_insecure();
  o2.scale_bits = 30;
  he::generate_keys(he::compile(m, o2), "test-model", dir / "params2");
  const he::ServerKeys p2 = he::load_server_keys(dir / "params2");
  expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", p2.info, p2.ctx); }, "q.bin: made with other encryption parameters than the keys in use");
  // Truncated query: refused before the batches are read.
  {
    std::ifstream in(dir / "q.bin", std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<std::pair<std::size_t, std::string>> cuts = {
        {3, "cut.bin: not a hecnn query file"},  // not even the magic
        {40, "cut.bin: truncated header"},
        // The whole file's checksum is checked before any batch is read.
        {bytes.size() / 2, "cut.bin: truncated or corrupted (the checksum of the file does not match)"},
        {bytes.size() - 10, "cut.bin: truncated or corrupted (the checksum of the file does not match)"}};
    for (const auto& [cut, message] : cuts) {
      std::ofstream(dir / "cut.bin", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
      SCOPED_TRACE("cut at " + std::to_string(cut));
      expect_error_mentioning(
          [&] {
            he::StreamReader r(dir / "cut.bin", "query", sk.info, sk.ctx);
            r.read_batch();
            r.read_batch();
            r.finish();
          },
          message);
    }
  }
  // A result file where a query is expected.
  expect_error_mentioning([&] { he::StreamReader(dir / "r.bin", "query", sk.info, sk.ctx); }, "r.bin: not a hecnn query file (it is a result file)");
  // A model whose input shape does not match the query.
  const nn::Model wide = with_random_params({{"input", {1, 7, 7}}, {"layers", {conv(2, 3, 1, "valid"), bn, act("swish:deg4:range4"), flat, dense(3)}}}, 6);
  const he::HePlan wide_plan = he::compile(wide, small_insecure());
  const he::batch::Engine wide_engine(wide_plan, sk.ctx, sk.keys);
  he::StreamReader r(dir / "q.bin", "query", sk.info, sk.ctx);
  expect_error_mentioning([&] { wide_engine.run(r.read_batch()); }, "expects 49 input ciphertexts");
  // Keys for other parameters than the plan.
  expect_error_mentioning([&] { he::batch::Engine(he::compile(m, o2), sk.ctx, sk.keys); }, "encrypted inference: the keys were made for other parameters than this model's plan");
  // Too many images for a batch.
  const he::batch::Client client(ck.info.spec, ck.ctx, ck.secret);
  std::vector<float> many(static_cast<std::size_t>(m.input.size()) * (plan.batch_size() + 1), 0.5f);
  expect_error_mentioning([&] { client.encrypt(many.data(), plan.batch_size() + 1); }, "client: a batch holds 1 to 1024 images; got 1025");
}

namespace {

nn::Model small_model() {
  return with_random_params({{"input", {1, 6, 6}}, {"layers", {conv(2, 3, 1, "valid"), bn, act("swish:deg4:range4"), flat, dense(3)}}}, 6);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

// A query of images [first, first + 12 + 8) of `dataset` (dataset_size images) in two batches.
he::StreamHeader write_query(const std::string& path, const he::ClientKeys& ck, const nn::Model& m, std::size_t first,
                             const std::string& dataset, std::size_t dataset_size) {
  he::StreamHeader h;
  h.kind = "query";
  h.key_id = ck.info.key_id;
  h.params_id = ck.info.spec.params_id;
  h.shape = m.input;
  h.per_batch = static_cast<std::size_t>(m.input.size());
  h.dataset = dataset;
  h.dataset_size = dataset_size;
  h.batches = {{first, 12}, {first + 12, 8}};
  const std::vector<float> images = random_images(m.input, 20, 3);
  const he::batch::Client client(ck.info.spec, ck.ctx, ck.secret);
  he::StreamWriter w(path, h, ck.ctx);
  w.write_batch(client.encrypt(images.data(), 12));
  w.write_batch(client.encrypt(images.data() + 12 * static_cast<std::size_t>(m.input.size()), 8));
  w.close();
  return h;
}

void read_all(const std::string& path, const he::ClientKeys& ck) {
  he::StreamReader r(path, "query", ck.info, ck.ctx);
  for (std::size_t b = 0; b < r.header().batches.size(); ++b) r.read_batch();
  r.finish();
}

// Replaces the only occurrence of `from` in the file by `to` (same length).
void edit_bytes(const std::string& path, const std::string& from, const std::string& to) {
  std::string bytes = slurp(path);
  const auto at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  ASSERT_EQ(from.size(), to.size());
  bytes.replace(at, from.size(), to);
  spit(path, bytes);
}

}  // namespace

TEST(HeFiles, KeyFilesFromAnotherKeyGenerationAreRefused) {
  TempDir dir;
  const he::HePlan plan = he::compile(small_model(), small_insecure());
  he::generate_keys(plan, "m", dir / "a");
  he::generate_keys(plan, "m", dir / "b");  // same model, same parameters, other keys
  EXPECT_NE(he::read_key_info(dir / "a").key_id, he::read_key_info(dir / "b").key_id);
  const std::string a_secret = slurp(dir / "a/secret.key"), a_relin = slurp(dir / "a/relin.key");
  // A secret key from the other generation: it would decrypt garbage; it is refused, both files named.
  fs::copy_file(dir / "b/secret.key", dir / "a/secret.key", fs::copy_options::overwrite_existing);
  expect_error_mentioning([&] { he::load_client_keys(dir / "a"); }, "different key generations");
  expect_error_mentioning([&] { he::load_client_keys(dir / "a"); }, dir / "a/secret.key");
  expect_error_mentioning([&] { he::load_client_keys(dir / "a"); }, dir / "a/keys.json");
  spit(dir / "a/secret.key", a_secret);
  EXPECT_NO_THROW(he::load_client_keys(dir / "a"));
  // The same for the evaluation key, on the server.
  fs::copy_file(dir / "b/relin.key", dir / "a/relin.key", fs::copy_options::overwrite_existing);
  expect_error_mentioning([&] { he::load_server_keys(dir / "a"); }, dir / "a/relin.key");
  spit(dir / "a/relin.key", a_relin);
  EXPECT_NO_THROW(he::load_server_keys(dir / "a"));
  // And keys.json from the other generation: now every key file disagrees with it.
  fs::copy_file(dir / "b/keys.json", dir / "a/keys.json", fs::copy_options::overwrite_existing);
  expect_error_mentioning([&] { he::load_server_keys(dir / "a"); }, "different key generations");
  expect_error_mentioning([&] { he::load_client_keys(dir / "a"); }, "different key generations");
  // A key file with no key id (as written before the id existed) cannot be matched: refused.
  const he::ServerKeys sk = he::load_server_keys(dir / "b");
  ckks::RelinKeys unbound = sk.keys.relin;
  unbound.key_set = {};
  ckks::write_file(dir / "b/relin.key", [&](std::ostream& os) { ckks::save(os, *sk.ctx, unbound); });
  expect_error_mentioning([&] { he::load_server_keys(dir / "b"); }, "carries no key id");
}

TEST(HeFiles, EditedQueryAndResultFilesAreRefused) {
  TempDir dir;
  const nn::Model m = small_model();
  const he::HePlan plan = he::compile(m, small_insecure());
  he::generate_keys(plan, "m", dir / "keys");
  const he::ClientKeys ck = he::load_client_keys(dir / "keys");
  write_query(dir / "q.bin", ck, m, 0, "mnist", 10000);
  const std::string good = slurp(dir / "q.bin");
  read_all(dir / "q.bin", ck);
  // Shifting the image indices (labels would shift), dropping images, or another dataset: each
  // edit of the header is refused before the header is used.
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"first\":0", "\"first\":1"}, {"\"count\":12", "\"count\":11"}, {"\"mnist\"", "\"MNIST\""}}) {
    spit(dir / "q.bin", good);
    edit_bytes(dir / "q.bin", from, to);
    expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", ck.info, ck.ctx); }, "header is corrupted or was edited");
  }
  // A careful edit that recomputes the header checksum is caught by the checksum of the whole file.
  {
    std::string bytes = good;
    std::uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 6, 4);
    const auto at = bytes.find("\"first\":0");
    bytes[at + 8] = '1';
    const auto sum = ckks::Checksum::of(bytes.data(), 10 + len);
    std::memcpy(bytes.data() + 10 + len, sum.data(), sum.size());
    spit(dir / "q.bin", bytes);
    expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", ck.info, ck.ctx); }, "checksum of the file");
  }
  // Ciphertext bytes changed, or the last batch cut off: refused before any batch is handed out.
  {
    std::string bytes = good;
    bytes[bytes.size() * 3 / 4] ^= 0x10;
    spit(dir / "q.bin", bytes);
    expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", ck.info, ck.ctx); }, "checksum of the file");
    spit(dir / "q.bin", good.substr(0, good.size() - 100));
    expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", ck.info, ck.ctx); }, "truncated");
  }
  // Files of format version 1 (no checksum over the header) are no longer read.
  {
    std::string bytes = good;
    const std::uint16_t v1 = 1;
    std::memcpy(bytes.data() + 4, &v1, 2);
    spit(dir / "q.bin", bytes);
    expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", ck.info, ck.ctx); }, "version 1");
  }
  // Writers refuse batches that overlap, leave gaps, or run past the dataset.
  he::StreamHeader h;
  h.kind = "query";
  h.key_id = ck.info.key_id;
  h.params_id = ck.info.spec.params_id;
  h.shape = m.input;
  h.per_batch = 1;
  h.batches = {{0, 12}, {10, 8}};
  expect_error_mentioning([&] { he::StreamWriter(dir / "x.bin", h, ck.ctx); }, "not contiguous");
  h.batches = {{0, 12}};
  h.dataset_size = 10;
  expect_error_mentioning([&] { he::StreamWriter(dir / "x.bin", h, ck.ctx); }, "beyond");
  EXPECT_FALSE(fs::exists(dir / "x.bin"));
}

TEST(HeFiles, LabelsMustBeThoseOfTheEncryptedDataset) {
  TempDir dir;
  const nn::Model m = small_model();
  he::generate_keys(he::compile(m, small_insecure()), "m", dir / "keys");
  const he::ClientKeys ck = he::load_client_keys(dir / "keys");
  write_query(dir / "q.bin", ck, m, 40, "mnist", 100);
  const he::StreamHeader h = he::StreamReader(dir / "q.bin", "query", ck.info, ck.ctx).header();
  EXPECT_EQ(h.dataset, "mnist");
  EXPECT_EQ(h.dataset_size, 100u);
  ASSERT_EQ(h.batches.size(), 2u);
  EXPECT_EQ(h.batches[0].first, 40u);
  EXPECT_NO_THROW(he::check_dataset(h, "q.bin", "mnist", 100));
  expect_error_mentioning([&] { he::check_dataset_name(h, "q.bin", "fashion-mnist"); }, "'mnist' dataset, not 'fashion-mnist'");
  expect_error_mentioning([&] { he::check_dataset(h, "q.bin", "fashion-mnist", 100); }, "not 'fashion-mnist'");
  expect_error_mentioning([&] { he::check_dataset(h, "q.bin", "mnist", 60); }, "test set of 100 images");
  // With the dataset size unknown, the indices must still lie within the labels.
  he::StreamHeader unknown = h;
  unknown.dataset_size = 0;
  EXPECT_NO_THROW(he::check_dataset(unknown, "q.bin", "mnist", 60));
  expect_error_mentioning([&] { he::check_dataset(unknown, "q.bin", "mnist", 55); }, "beyond the 55 images");
  unknown.dataset.clear();
  expect_error_mentioning([&] { he::check_dataset(unknown, "q.bin", "mnist", 100); }, "does not name the dataset");
}

TEST(HeFiles, KeygenRefusesExistingDirectoriesAndSymbolicLinks) {
  TempDir dir;
  const he::HePlan plan = he::compile(small_model(), small_insecure());
  // A symbolic link at secret.key: refused, with or without replace, and its target untouched.
  fs::create_directories(dir / "linked");
  std::ofstream(dir / "victim") << "precious";
  fs::create_symlink(dir / "victim", dir / "linked/secret.key");
  expect_error_mentioning([&] { he::generate_keys(plan, "m", dir / "linked"); }, "not empty");
  expect_error_mentioning([&] { he::generate_keys(plan, "m", dir / "linked", true); }, "symbolic link");
  EXPECT_EQ(slurp(dir / "victim"), "precious");
  EXPECT_EQ(names_in(dir / "linked"), std::vector<std::string>{"secret.key"});
  // An existing key directory is not replaced unless asked.
  he::generate_keys(plan, "m", dir / "keys");
  const std::string id = he::read_key_info(dir / "keys").key_id;
  const std::string secret = slurp(dir / "keys/secret.key");
  expect_error_mentioning([&] { he::generate_keys(plan, "m", dir / "keys"); }, "--force");
  EXPECT_EQ(he::read_key_info(dir / "keys").key_id, id);
  EXPECT_EQ(slurp(dir / "keys/secret.key"), secret);
  // Replaced on request: new keys, files the plan does not need removed, others left alone.
  // The old secret.key is replaced, never written into (whoever owns it): another link to it keeps the old key.
  fs::create_hard_link(dir / "keys/secret.key", dir / "old-secret.key");
  std::ofstream(dir / "keys/galois.key") << "stale";
  std::ofstream(dir / "keys/notes.txt") << "mine";
  he::generate_keys(plan, "m", dir / "keys", true);
  EXPECT_NE(he::read_key_info(dir / "keys").key_id, id);
  EXPECT_NO_THROW(he::load_client_keys(dir / "keys"));
  EXPECT_EQ(slurp(dir / "old-secret.key"), secret);
  EXPECT_NE(slurp(dir / "keys/secret.key"), secret);
  EXPECT_EQ(names_in(dir / "keys"), (std::vector<std::string>{"keys.json", "notes.txt", "params.bin", "public.key", "relin.key", "secret.key"}));
  // Not a directory.
  std::ofstream(dir / "file") << "x";
  expect_error_mentioning([&] { he::generate_keys(plan, "m", dir / "file", true); }, "not a directory");
}

TEST(HeFiles, KeyFilesArePrivateAndWrittenAtomically) {
  TempDir dir;
  const he::HePlan plan = he::compile(small_model(), small_insecure());
  const mode_t old_mask = ::umask(0);  // the modes must not depend on the umask
  he::generate_keys(plan, "m", dir / "keys");
  ::umask(old_mask);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "keys/secret.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  he::generate_keys(plan, "m", dir / "new/slash/");  // parents created as usual, the key directory private
  ASSERT_EQ(::stat((dir / "new/slash").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Nothing but the key files: no temporary file left behind.
  EXPECT_EQ(names_in(dir / "keys"), (std::vector<std::string>{"keys.json", "params.bin", "public.key", "relin.key", "secret.key"}));
  // A query written and one abandoned half-way: the first complete, the second absent, no leftovers.
  const nn::Model m = small_model();
  const he::ClientKeys ck = he::load_client_keys(dir / "keys");
  fs::create_directories(dir / "out");
  write_query(dir / "out/q.bin", ck, m, 0, "", 0);
  {
    const he::StreamHeader h = he::StreamReader(dir / "out/q.bin", "query", ck.info, ck.ctx).header();
    he::StreamWriter abandoned(dir / "out/abandoned.bin", h, ck.ctx);  // destroyed without close()
  }
  EXPECT_EQ(names_in(dir / "out"), std::vector<std::string>{"q.bin"});
  read_all(dir / "out/q.bin", ck);
  // A secret key that other users may read is refused (and says how to fix it).
  fs::permissions(dir / "keys/secret.key", fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  expect_error_mentioning([&] { he::load_client_keys(dir / "keys"); }, "chmod 600");
}

// Special files and oversized descriptions: a FIFO would block the open for ever, a device would
// never end; each is refused by name before it is opened.
TEST(HeFiles, SpecialAndOversizedFilesAreRefused) {
  TempDir dir;
  const he::HePlan plan = he::compile(small_model(), small_insecure());
  he::generate_keys(plan, "m", dir / "k");
  const he::ServerKeys sk = he::load_server_keys(dir / "k");
  ASSERT_EQ(::mkfifo((dir / "fifo.bin").c_str(), 0600), 0);
  expect_error_mentioning([&] { he::StreamReader(dir / "fifo.bin", "query", sk.info, sk.ctx); },
                          "fifo.bin is a FIFO (named pipe), not a regular file");
  expect_error_mentioning([&] { he::StreamReader("/dev/zero", "query", sk.info, sk.ctx); },
                          "/dev/zero is a character device, not a regular file");
  const std::string relin = slurp(dir / "k/relin.key");
  fs::remove(dir / "k/relin.key");
  ASSERT_EQ(::mkfifo((dir / "k/relin.key").c_str(), 0600), 0);
  expect_error_mentioning([&] { he::load_server_keys(dir / "k"); }, "relin.key is a FIFO (named pipe), not a regular file");
  fs::remove(dir / "k/relin.key");
  spit(dir / "k/relin.key", relin);
  const std::string keys_json = slurp(dir / "k/keys.json");
  spit(dir / "k/keys.json", keys_json + std::string(2 << 20, ' '));
  expect_error_mentioning([&] { he::load_server_keys(dir / "k"); }, "keys.json: larger than 1048576 bytes");
}
