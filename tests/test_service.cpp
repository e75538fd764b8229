// The gRPC service in-process on loopback at small insecure parameters (a 6 x 6 model): load from
// 8 concurrent clients, the queue limit, and every fault answered by a clear status while the
// server keeps serving the others. Every wait is bounded (call deadlines); nothing asserts a time.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "he/keys.h"
#include "he/runtime.h"
#include "nn/forward.h"
#include "nn/safetensors.h"
#include "service/client.h"
#include "service/server.h"
#include "service/wire.h"
#include "test_util.h"

using namespace hecnn;
namespace fs = std::filesystem;
namespace v1 = hecnn::v1;
using grpc::StatusCode;

namespace {

nn::Tensor random_tensor(std::vector<std::int64_t> shape, std::mt19937_64& rng, float lo, float hi) {
  nn::Tensor t(std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (auto& v : t.data) v = d(rng);
  return t;
}

// conv 2x3x3 valid, square, flatten, dense 3: depth 3, quick at N = 2^11.
nn::Model tiny_model(unsigned seed, int side = 6) {
  const nlohmann::json arch = {{"input", {1, side, side}},
                               {"layers",
                                {{{"type", "conv2d"}, {"filters", 2}, {"kernel", 3}, {"stride", 1}, {"padding", "valid"}},
                                 {{"type", "activation"}, {"fn", "square"}},
                                 {{"type", "flatten"}},
                                 {{"type", "dense"}, {"units", 3}}}}};
  nn::Model m = nn::Model::from_architecture(arch);
  std::mt19937_64 rng(seed);
  nn::Shape in = m.input;
  const auto shapes = m.shapes(false);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [name, shape] : nn::Model::expected_params(m.layers[i], in)) {
      m.layers[i].params[name] = random_tensor(shape, rng, -0.5f, 0.5f);
    }
    in = shapes[i];
  }
  m.validate();
  return m;
}

std::vector<float> random_images(std::size_t values, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(0, 1);
  std::vector<float> v(values);
  for (auto& x : v) x = d(rng);
  return v;
}

he::CompileOptions small() {
  he::CompileOptions o;
  o.log_n = 11;
  o.scale_bits = 36;
  o.allow_insecure = true;
  return o;
}

// A server on a free loopback port serving tiny.safetensors (and other.safetensors, 7 x 7 inputs).
class Fixture {
 public:
  explicit Fixture(service::ServerOptions o = {}) {
    nn::save_model(tiny_model(1), models.file("tiny.safetensors"));
    nn::save_model(tiny_model(2, 7), models.file("other.safetensors"));
    o.listen = "127.0.0.1:0";
    o.models_dir = models.dir();
    o.compile = small();
    o.allow_insecure_keys = true;
    o.threads = 2;
    o.log = &log;
    server = std::make_unique<service::Server>(o);
    server->start();
    address = "127.0.0.1:" + std::to_string(server->port());
  }
  ~Fixture() {
    server->shutdown();
    if (::testing::Test::HasFailure() || std::uncaught_exceptions() > 0) std::cerr << "server log:\n" << log.str();
  }
  service::RemoteClient client() const { return service::RemoteClient(service::ChannelOptions{address, "", ""}); }
  std::string log_text() const { return log.str(); }

  test::TempDir models;
  std::ostringstream log;
  std::unique_ptr<service::Server> server;
  std::string address;
};

// A client's keys for a model offered by the server, in memory (generated from ListModels, as
// hecnn client does).
struct Keys {
  std::optional<he::KeyBundle> bundle;
  std::unique_ptr<he::InferenceClient> client;
  const he::ClientSpec& spec() const { return bundle->info().spec; }
  const ckks::CkksContext& ctx() const { return *bundle->context(); }
};

std::unique_ptr<Keys> make_keys(service::RemoteClient& rc, const std::string& model, const std::string& layout = "batch") {
  auto k = std::make_unique<Keys>();
  const auto list = rc.list_models();
  for (const auto& m : list.models()) {
    if (m.name() != model) continue;
    for (const auto& l : m.layouts()) {
      if (l.layout() != layout) continue;
      ckks::ParameterOptions po;
      po.allow_insecure = true;
      std::istringstream ps(l.params(), std::ios::binary);
      const auto params = ckks::load_parameters(ps, po);
      he::KeyRequirements need;
      need.relinearization = l.relinearization_key();
      need.rotations.assign(l.rotations().begin(), l.rotations().end());
      const auto spec = he::ClientSpec::from_json(nlohmann::json::parse(l.client_spec_json()));
      k->bundle = he::KeyBundle::generate(params, need, spec, model);
    }
  }
  if (!k->bundle) throw Error("no offer of " + model + " in the " + layout + " layout");
  k->client = he::make_client(k->spec(), k->bundle->context(), k->bundle->secret_key());
  return k;
}

std::string encrypt(const Keys& k, const std::vector<float>& images, std::size_t count) {
  return service::serialize_ciphertexts(k.ctx(), k.client->encrypt(images.data(), count), true);
}

// Checks a fetched result against the plaintext model.
void check_result(const Keys& k, const service::RemoteResult& r, const nn::Model& m, const std::vector<float>& images,
                  std::size_t count) {
  ASSERT_EQ(r.images, count);
  const auto cts = service::parse_ciphertexts(r.bytes, k.ctx(), k.spec().output_ciphertexts);
  const auto logits = k.client->decrypt(cts, count);
  const auto per = static_cast<std::size_t>(m.input.size());
  for (std::size_t i = 0; i < count; ++i) {
    const auto want = nn::forward(m, images.data() + i * per);
    ASSERT_EQ(logits[i].size(), want.size());
    for (std::size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(logits[i][j], want[j], 1e-3) << "image " << i << " output " << j;
  }
}

StatusCode code_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const service::RpcError& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return StatusCode::OK;
}

}  // namespace

TEST(Service, EightConcurrentClientsGetTheirOwnCorrectResults) {
  service::ServerOptions o;
  o.concurrent_queries = 2;
  o.max_queries = 6;  // below the 8 clients' demand: some submissions are refused and retried
  Fixture f(o);
  const nn::Model m = tiny_model(1);
  std::atomic<int> exhausted{0}, failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      try {
        auto rc = f.client();
        const auto k = make_keys(rc, "tiny");
        const auto s = rc.open_session("tiny", *k->bundle);
        std::vector<std::pair<std::string, std::vector<float>>> mine;
        for (int q = 0; q < 3; ++q) {
          const std::size_t count = 1 + static_cast<std::size_t>((c + q) % 4);
          auto images = random_images(count * 36, static_cast<unsigned>(100 * c + q));
          const std::string bytes = encrypt(*k, images, count);
          std::string id;
          for (int attempt = 0; attempt < 200 && id.empty(); ++attempt) {
            try {
              id = rc.submit(s, bytes, count, k->spec().input_ciphertexts);
            } catch (const service::RpcError& e) {
              if (e.code() != StatusCode::RESOURCE_EXHAUSTED) throw;
              ++exhausted;
              std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
          }
          if (id.empty()) throw Error("never accepted");
          mine.emplace_back(id, std::move(images));
        }
        for (const auto& [id, images] : mine) {
          const auto r = rc.get_result(s, id, true, nullptr, 120);
          check_result(*k, r, m, images, images.size() / 36);
        }
        rc.close(s);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "client " << c << ": " << e.what();
        ++failures;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures, 0);
  const auto st = f.client().stats();
  EXPECT_EQ(st.queries_served(), 24u);
  EXPECT_EQ(st.queries_failed(), 0u);
  EXPECT_EQ(st.sessions_active(), 0u);
  EXPECT_EQ(st.results_stored(), 0u);
  EXPECT_EQ(st.memory_reserved(), 0u);
  EXPECT_EQ(st.queries_refused(), static_cast<std::uint64_t>(exhausted.load()));
}

TEST(Service, FullQueueIsRefusedAtOnceThenAcceptsAgain) {
  // Two queries fill the server whether they are still queued or running (max_queries) or done
  // and stored (max_results: a pending query holds its result's place), however fast they run.
  service::ServerOptions o;
  o.max_queries = 2;
  o.max_results = 2;
  Fixture f(o);
  auto rc = f.client();
  const auto k = make_keys(rc, "tiny");
  const auto s = rc.open_session("tiny", *k->bundle);
  const auto images = random_images(36, 7);
  const std::string bytes = encrypt(*k, images, 1);
  const std::size_t n = k->spec().input_ciphertexts;
  const std::string a = rc.submit(s, bytes, 1, n), b = rc.submit(s, bytes, 1, n);
  std::string msg;
  EXPECT_EQ(code_of([&] { rc.submit(s, bytes, 1, n); }, &msg), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(msg.find("queue is full") != std::string::npos || msg.find("maximum of 2 results") != std::string::npos) << msg;
  EXPECT_EQ(rc.stats().queries_refused(), 1u);
  check_result(*k, rc.get_result(s, a, true, nullptr, 60), tiny_model(1), images, 1);
  check_result(*k, rc.get_result(s, b, true, nullptr, 60), tiny_model(1), images, 1);
  const std::string c = rc.submit(s, bytes, 1, n);  // accepted again
  check_result(*k, rc.get_result(s, c, true, nullptr, 60), tiny_model(1), images, 1);
}

TEST(Service, FaultsGetAClearStatusAndTheServerKeepsServing) {
  service::ServerOptions o;
  o.max_query_bytes = 64 << 20;
  o.max_key_bytes = 256 << 20;
  Fixture f(o);
  auto rc = f.client();
  const auto k = make_keys(rc, "tiny");
  const auto s = rc.open_session("tiny", *k->bundle);
  const auto k2 = make_keys(rc, "tiny");
  const auto s2 = rc.open_session("tiny", *k2->bundle);
  const auto images = random_images(2 * 36, 9);
  const std::string bytes = encrypt(*k, images, 2);
  const std::size_t n = k->spec().input_ciphertexts;
  const std::string q = rc.submit(s, bytes, 2, n);
  std::string msg;

  // Tokens: wrong, missing, another session's.
  auto wrong = s;
  wrong.token[0] = wrong.token[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(code_of([&] { rc.poll(wrong, q); }), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code_of([&] { rc.poll({s.id, ""}, q); }), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code_of([&] { rc.poll({s.id, s2.token}, q); }), StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;  // no metadata at all
    v1::CancelQueryRequest req;
    req.set_query_id(q);
    v1::CancelQueryResponse resp;
    EXPECT_EQ(rc.stub().CancelQuery(&ctx, req, &resp).error_code(), StatusCode::UNAUTHENTICATED);
  }
  // Another session's query id reads exactly like an unknown one; an unknown id is answered at
  // once even when asked to wait (a busy wait would run into the deadline instead).
  std::string other, unknown;
  EXPECT_EQ(code_of([&] { rc.get_result(s2, q, true, nullptr, 30); }, &other), StatusCode::NOT_FOUND);
  EXPECT_EQ(code_of([&] { rc.cancel(s2, q); }), StatusCode::NOT_FOUND);
  EXPECT_EQ(code_of([&] { rc.get_result(s, "0123456789abcdef", true, nullptr, 30); }, &unknown), StatusCode::NOT_FOUND);
  EXPECT_EQ(other.substr(0, other.find('\'')), unknown.substr(0, unknown.find('\'')));

  // Keys for another model (7 x 7 inputs); insecure keys on a server that refuses them is covered
  // by the CLI test.
  EXPECT_EQ(code_of([&] { rc.open_session("other", *k->bundle); }, &msg), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(msg.find("made for another model"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { rc.open_session("nope", *k->bundle); }), StatusCode::NOT_FOUND);
  // Uploads that are not a public key bundle: one holding the secret key (never taken, whatever
  // else is right), a corrupted one, one cut short.
  auto raw_open = [&](const std::string& bundle, std::uint64_t declared) {
    grpc::ClientContext ctx;
    v1::OpenSessionResponse resp;
    auto w = rc.stub().OpenSession(&ctx, &resp);
    v1::OpenSessionRequest h;
    h.mutable_header()->set_model("tiny");
    h.mutable_header()->set_layout("batch");
    h.mutable_header()->set_bundle_bytes(declared);
    bool ok = w->Write(h);
    for (std::size_t off = 0; ok && off < bundle.size(); off += service::kChunkBytes) {
      v1::OpenSessionRequest c;
      c.mutable_chunk()->set_file(v1::KeyChunk::BUNDLE);
      c.mutable_chunk()->set_data(bundle.substr(off, service::kChunkBytes));
      ok = w->Write(c);
    }
    w->WritesDone();
    const grpc::Status st = w->Finish();
    msg = st.error_message();
    return st.error_code();
  };
  {
    const auto full = k->bundle->to_bytes();
    const std::string with_secret(full->data(), full->size());
    EXPECT_EQ(raw_open(with_secret, with_secret.size()), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(msg.find("secret.key): a secret key, which is never taken here"), std::string::npos) << msg;
    std::string corrupt = k->bundle->public_bytes();
    corrupt[corrupt.size() / 2] ^= 0x01;
    EXPECT_EQ(raw_open(corrupt, corrupt.size()), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(msg.find("bad keys"), std::string::npos) << msg;
    const std::string good = k->bundle->public_bytes();
    EXPECT_EQ(raw_open(good.substr(0, good.size() - 10), good.size()), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(msg.find("truncated upload"), std::string::npos) << msg;
  }
  {
    // Keys at another ring degree: their ciphertexts in this session are refused.
    he::CompileOptions big = small();
    big.log_n = 12;
    const he::HePlan plan = he::compile(tiny_model(1), big);
    const he::KeyBundle other = he::KeyBundle::generate(plan, "tiny");
    const auto client = he::make_client(other.info().spec, other.context(), other.secret_key());
    const std::string other_cts = service::serialize_ciphertexts(*other.context(), client->encrypt(images.data(), 1), true);
    EXPECT_EQ(code_of([&] { rc.submit(s, other_cts, 1, n); }, &msg), StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(msg.find("bad ciphertexts"), std::string::npos) << msg;
  }
  // Key upload larger than the limit: refused from the declared sizes.
  {
    grpc::ClientContext ctx;
    v1::OpenSessionResponse resp;
    auto w = rc.stub().OpenSession(&ctx, &resp);
    v1::OpenSessionRequest h;
    h.mutable_header()->set_model("tiny");
    h.mutable_header()->set_layout("batch");
    h.mutable_header()->set_bundle_bytes(std::uint64_t{1} << 40);
    w->Write(h);
    w->WritesDone();
    EXPECT_EQ(w->Finish().error_code(), StatusCode::RESOURCE_EXHAUSTED);
  }
  // Truncated, corrupted, oversized and lying query streams.
  auto raw_submit = [&](std::uint64_t declared, const std::string& data, std::size_t count) {
    grpc::ClientContext ctx;
    service::RemoteClient::authorize(ctx, s);
    v1::SubmitQueryResponse resp;
    auto w = rc.stub().SubmitQuery(&ctx, &resp);
    v1::SubmitQueryRequest h;
    h.mutable_header()->set_image_count(1);
    h.mutable_header()->set_ciphertext_count(static_cast<std::uint32_t>(count));
    h.mutable_header()->set_total_bytes(declared);
    bool ok = w->Write(h);
    std::size_t sent = 0;
    for (std::size_t off = 0; ok && off < data.size(); off += service::kChunkBytes) {
      v1::SubmitQueryRequest c;
      c.set_chunk(data.substr(off, service::kChunkBytes));
      ok = w->Write(c);
      if (ok) sent += c.chunk().size();
    }
    w->WritesDone();
    const grpc::Status st = w->Finish();
    msg = st.error_message();
    return st.error_code();
  };
  EXPECT_EQ(raw_submit(bytes.size(), bytes.substr(0, bytes.size() - 100), n), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  std::string corrupt = bytes;
  corrupt[corrupt.size() / 2] ^= 0x40;
  EXPECT_EQ(raw_submit(corrupt.size(), corrupt, n), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(msg.find("ciphertext"), std::string::npos) << msg;
  EXPECT_EQ(raw_submit(bytes.size() - 1000, bytes, n), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(msg.find("more than"), std::string::npos) << msg;
  EXPECT_EQ(raw_submit(bytes.size(), bytes, n + 1), StatusCode::INVALID_ARGUMENT);
  // Larger than the limit: refused from the header, before the bytes are read.
  EXPECT_EQ(raw_submit(std::uint64_t{65} << 20, std::string(1 << 20, 'x'), n), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;

  // A client going away mid-upload and mid-result leaves nothing behind.
  {
    grpc::ClientContext ctx;
    v1::OpenSessionResponse resp;
    auto w = rc.stub().OpenSession(&ctx, &resp);
    v1::OpenSessionRequest h;
    h.mutable_header()->set_model("tiny");
    h.mutable_header()->set_layout("batch");
    h.mutable_header()->set_bundle_bytes(1000);
    w->Write(h);
    v1::OpenSessionRequest c;
    c.mutable_chunk()->set_file(v1::KeyChunk::BUNDLE);
    c.mutable_chunk()->set_data(std::string(500, 'p'));
    w->Write(c);
    ctx.TryCancel();
    EXPECT_FALSE(w->Finish().ok());
  }
  check_result(*k, rc.get_result(s, q, false, nullptr, 60), tiny_model(1), images, 2);  // kept: release = false
  {
    grpc::ClientContext ctx;
    service::RemoteClient::authorize(ctx, s);
    v1::GetResultRequest req;
    req.set_query_id(q);
    req.set_wait(true);
    auto r = rc.stub().GetResult(&ctx, req);
    v1::GetResultResponse m1;
    EXPECT_TRUE(r->Read(&m1));
    ctx.TryCancel();
    EXPECT_FALSE(r->Finish().ok());
  }
  // The interrupted fetch left the result; a complete fetch, then its removal.
  check_result(*k, rc.get_result(s, q, true, nullptr, 60), tiny_model(1), images, 2);
  EXPECT_EQ(code_of([&] { rc.poll(s, q); }), StatusCode::NOT_FOUND);

  // Still serving both sessions; cancel and close.
  const std::string q2 = rc.submit(s2, encrypt(*k2, images, 2), 2, n);
  check_result(*k2, rc.get_result(s2, q2, true, nullptr, 60), tiny_model(1), images, 2);
  const std::string q3 = rc.submit(s, bytes, 2, n);
  rc.cancel(s, q3);
  EXPECT_EQ(code_of([&] { rc.poll(s, q3); }), StatusCode::NOT_FOUND);
  rc.close(s);
  EXPECT_EQ(code_of([&] { rc.submit(s, bytes, 2, n); }), StatusCode::UNAUTHENTICATED);
  rc.close(s2);

  // The log: events for sessions and queries, never a token, key bytes or ciphertext bytes.
  f.server->shutdown();
  const std::string log = f.log_text();
  EXPECT_NE(log.find("event=session_opened"), std::string::npos);
  EXPECT_NE(log.find("event=query_refused"), std::string::npos);
  EXPECT_NE(log.find("event=query_done"), std::string::npos);
  for (const auto& token : {s.token, s2.token}) EXPECT_EQ(log.find(token), std::string::npos) << "a token is in the log";
  const std::string key = k->bundle->public_bytes();
  for (const std::string& secret : {key, bytes}) {
    for (std::size_t off = 64; off + 16 < secret.size(); off += secret.size() / 7) {
      const std::string piece = secret.substr(off, 16);
      EXPECT_EQ(log.find(piece), std::string::npos) << "key or ciphertext bytes in the log";
      std::string hex;
      char b[3];
      for (const unsigned char c : piece) {
        std::snprintf(b, sizeof b, "%02x", c);
        hex += b;
      }
      EXPECT_EQ(log.find(hex), std::string::npos) << "key or ciphertext bytes (hex) in the log";
    }
  }
}

// Holds queries at their start until released (ServerOptions::on_query_start).
class Gate {
 public:
  void hold(const std::string&) {
    std::unique_lock<std::mutex> lock(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  bool wait_started(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return started_ >= n; });
  }
  void open() {
    const std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int started_ = 0;
  bool open_ = false;
};

TEST(Service, QueuedQueriesReserveMemoryAndOneBeyondTheLimitIsRefused) {
  // What one session and one query reserve, from a server without a limit.
  std::size_t standing = 0, query = 0;
  {
    Fixture f;
    auto rc = f.client();
    const auto k = make_keys(rc, "tiny");
    const auto s = rc.open_session("tiny", *k->bundle);
    standing = rc.stats().memory_reserved();
    const auto list = rc.list_models();
    for (const auto& m : list.models()) {
      for (const auto& l : m.layouts()) {
        if (m.name() == "tiny" && l.layout() == "batch") query = l.predicted_query_memory();
      }
    }
  }
  ASSERT_GT(standing, 0u);
  ASSERT_GT(query, 0u);
  // Room for two sessions and two queries, not three: one query runs (held at its start), one
  // waits in the queue, and a third is refused at once although only one is running.
  Gate gate;
  service::ServerOptions o;
  o.memory_limit = 2 * standing + 2 * query + query / 2;
  o.concurrent_queries = 1;
  o.on_query_start = [&](const std::string& id) { gate.hold(id); };
  Fixture f(o);
  auto rc = f.client();
  const auto a = make_keys(rc, "tiny"), b = make_keys(rc, "tiny");
  const auto sa = rc.open_session("tiny", *a->bundle), sb = rc.open_session("tiny", *b->bundle);
  EXPECT_EQ(rc.stats().memory_reserved(), 2 * standing);
  const auto images = random_images(36, 21);
  const std::size_t n = a->spec().input_ciphertexts;
  const std::string qa = rc.submit(sa, encrypt(*a, images, 1), 1, n);
  ASSERT_TRUE(gate.wait_started(1));
  const std::string qb = rc.submit(sb, encrypt(*b, images, 1), 1, n);
  auto st = rc.stats();
  EXPECT_EQ(st.queries_running(), 1u);
  EXPECT_EQ(st.queries_queued(), 1u);
  EXPECT_EQ(st.memory_reserved(), 2 * standing + 2 * query);  // the queued query counts
  std::string msg;
  EXPECT_EQ(code_of([&] { rc.submit(sa, encrypt(*a, images, 1), 1, n); }, &msg), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(msg.find("memory limit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("try again later"), std::string::npos) << msg;
  EXPECT_EQ(rc.stats().memory_reserved(), 2 * standing + 2 * query);  // the refusal reserved nothing
  EXPECT_EQ(rc.stats().queries_refused(), 1u);
  // A queued query cancelled gives its memory back; the running one's comes back when it ends.
  rc.cancel(sb, qb);
  EXPECT_EQ(rc.stats().memory_reserved(), 2 * standing + query);
  const std::string qb2 = rc.submit(sb, encrypt(*b, images, 1), 1, n);
  gate.open();
  check_result(*a, rc.get_result(sa, qa, true, nullptr, 60), tiny_model(1), images, 1);
  check_result(*b, rc.get_result(sb, qb2, true, nullptr, 60), tiny_model(1), images, 1);
  const std::string qa2 = rc.submit(sa, encrypt(*a, images, 1), 1, n);  // room again
  check_result(*a, rc.get_result(sa, qa2, true, nullptr, 60), tiny_model(1), images, 1);
  EXPECT_EQ(rc.stats().memory_reserved(), 2 * standing);
  rc.close(sa);
  rc.close(sb);
  EXPECT_EQ(rc.stats().memory_reserved(), 0u);
}

// A session from upload to result leaves no file anywhere: not in TMPDIR, HOME or the working
// directory (the keys live in memory on both ends).
TEST(Service, KeysAndQueriesNeverTouchTheDisk) {
  test::TempDir models, tmp, home, cwd;
  nn::save_model(tiny_model(1), models.file("tiny.safetensors"));
  struct Env {
    std::string name;
    std::optional<std::string> old;
    Env(std::string n, const std::string& value) : name(std::move(n)) {
      if (const char* v = std::getenv(name.c_str())) old = v;
      ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~Env() {
      if (old) ::setenv(name.c_str(), old->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  };
  const auto files_in = [&] {
    std::string found;
    for (const auto& dir : {tmp.dir(), home.dir(), cwd.dir()}) {
      for (const auto& e : fs::recursive_directory_iterator(dir)) found += " " + e.path().string();
    }
    return found;
  };
  const fs::path was = fs::current_path();
  {
    const Env t("TMPDIR", tmp.dir()), h("HOME", home.dir());
    fs::current_path(cwd.dir());
    try {
      service::ServerOptions o;
      o.listen = "127.0.0.1:0";
      o.models_dir = models.dir();
      o.compile = small();
      o.allow_insecure_keys = true;
      o.threads = 2;
      service::Server server(o);
      server.start();
      auto rc = service::RemoteClient(service::ChannelOptions{"127.0.0.1:" + std::to_string(server.port()), "", ""});
      for (const std::string layout : {"batch", "packed"}) {
        const auto k = make_keys(rc, "tiny", layout);
        const auto s = rc.open_session("tiny", *k->bundle);
        EXPECT_EQ(files_in(), "") << "files appeared while the server holds a session";
        const std::size_t count = layout == "batch" ? 3 : k->spec().batch_size;
        const auto images = random_images(count * 36, 23);
        const std::string q = rc.submit(s, encrypt(*k, images, count), count, k->spec().input_ciphertexts);
        check_result(*k, rc.get_result(s, q, true, nullptr, 60), tiny_model(1), images, count);
        EXPECT_EQ(files_in(), "") << "files appeared while the server holds a session";
        rc.close(s);
      }
      server.shutdown();
    } catch (...) {
      fs::current_path(was);
      throw;
    }
    fs::current_path(was);
  }
  EXPECT_EQ(files_in(), "") << "files appeared";
}

TEST(Service, ExpiredResultsAndIdleSessionsAreRemoved) {
  service::ServerOptions o;
  o.result_lifetime_s = 0.3;
  o.session_idle_s = 1.0;
  Fixture f(o);
  auto rc = f.client();
  const auto k = make_keys(rc, "tiny");
  const auto s = rc.open_session("tiny", *k->bundle);
  const auto images = random_images(36, 5);
  const std::string q = rc.submit(s, encrypt(*k, images, 1), 1, k->spec().input_ciphertexts);
  v1::QueryStatus st;
  for (int i = 0; i < 600 && st.state() != v1::QueryStatus::DONE; ++i) {  // at most 60 s
    st = rc.poll(s, q);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(st.state(), v1::QueryStatus::DONE);
  StatusCode c = StatusCode::OK;
  for (int i = 0; i < 100 && c == StatusCode::OK; ++i) {  // the reaper runs every 0.2 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    c = code_of([&] { rc.poll(s, q); });
  }
  EXPECT_EQ(c, StatusCode::NOT_FOUND);
  for (int i = 0; i < 100 && c != StatusCode::UNAUTHENTICATED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    c = code_of([&] { rc.stats(); if (rc.stats().sessions_active() == 0) rc.poll(s, q); });
  }
  EXPECT_EQ(c, StatusCode::UNAUTHENTICATED);
  EXPECT_NE(f.log_text().find("reason=idle"), std::string::npos);
}

TEST(Service, PackedLayoutIsServed) {
  Fixture f;
  auto rc = f.client();
  const auto k = make_keys(rc, "tiny", "packed");
  const auto s = rc.open_session("tiny", *k->bundle);
  const std::size_t count = k->spec().batch_size;
  const auto images = random_images(count * 36, 11);
  const std::string q = rc.submit(s, encrypt(*k, images, count), count, k->spec().input_ciphertexts);
  check_result(*k, rc.get_result(s, q, true, nullptr, 60), tiny_model(1), images, count);
}

TEST(Service, ARestartedServerKnowsNoOldSessionAndServesNewOnes) {
  auto f = std::make_unique<Fixture>();
  auto rc = f->client();
  const auto k = make_keys(rc, "tiny");
  const auto s = rc.open_session("tiny", *k->bundle);
  const auto images = random_images(36, 13);
  const std::string bytes = encrypt(*k, images, 1);
  const std::size_t n = k->spec().input_ciphertexts;
  const std::string q = rc.submit(s, bytes, 1, n);
  const std::string address = f->address;
  f.reset();  // stopped: calls fail, nothing half-done is served
  EXPECT_EQ(code_of([&] { rc.poll(s, q); }), StatusCode::UNAVAILABLE);
  service::ServerOptions o;
  test::TempDir models;
  nn::save_model(tiny_model(1), models.file("tiny.safetensors"));
  o.listen = address;
  o.models_dir = models.dir();
  o.compile = small();
  o.allow_insecure_keys = true;
  service::Server again(o);
  again.start();
  auto rc2 = service::RemoteClient(service::ChannelOptions{address, "", ""});
  EXPECT_EQ(code_of([&] { rc2.poll(s, q); }), StatusCode::UNAUTHENTICATED);
  const auto s2 = rc2.open_session("tiny", *k->bundle);  // the client resubmits in a new session
  check_result(*k, rc2.get_result(s2, rc2.submit(s2, bytes, 1, n), true, nullptr, 60), tiny_model(1), images, 1);
  again.shutdown();
}

TEST(Service, PlaintextOnlyOnLoopback) {
  EXPECT_TRUE(service::is_loopback_address("127.0.0.1:50051"));
  EXPECT_TRUE(service::is_loopback_address("localhost:1"));
  EXPECT_TRUE(service::is_loopback_address("[::1]:50051"));
  EXPECT_FALSE(service::is_loopback_address("0.0.0.0:50051"));
  EXPECT_FALSE(service::is_loopback_address("[::]:50051"));
  EXPECT_FALSE(service::is_loopback_address("127.evil.com:1"));
  EXPECT_FALSE(service::is_loopback_address("10.0.0.1:50051"));
  test::TempDir models;
  nn::save_model(tiny_model(1), models.file("tiny.safetensors"));
  service::ServerOptions o;
  o.models_dir = models.dir();
  o.compile = small();
  o.listen = "0.0.0.0:0";
  test::expect_error_mentioning([&] { service::Server x(o); }, "refusing to listen in plaintext");
}
