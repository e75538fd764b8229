#pragma once
// Output files written atomically, secret files, and memory that held secrets.
//
// AtomicFile writes to a fresh temporary file beside the final name (".NAME.tmp-XXXXXXXX", created
// with open(O_CREAT | O_EXCL | O_NOFOLLOW), so nothing already there, and no symbolic link, is ever
// opened), then flushes, fsyncs and renames it over the final name. A symbolic link at the final
// name is replaced, never followed; a crash or an error leaves the final name as it was (the
// temporary file is removed unless the process dies). Secret files are created with mode 0600
// from the start (no window in which they are readable by others), and the stream's buffer is
// zeroed when it is released.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

namespace hecnn {

// Throws hecnn::Error naming `path` unless it names a regular file (after symbolic links): a
// missing file, a directory, a device, a FIFO, a socket or a symbolic link loop gets a message that
// says which. `what` describes the file ("model file", "dataset file"). Opening a FIFO would block;
// reading a device could go on for ever: loaders call this first.
void check_regular_file(const std::string& path, const std::string& what);
// The size of a regular file (check_regular_file first).
std::uint64_t regular_file_size(const std::string& path, const std::string& what);

enum class FileMode {
  Public,  // 0666 less the umask, like any new file
  Secret,  // exactly 0600
};

class AtomicFile {
 public:
  explicit AtomicFile(std::string path, FileMode mode = FileMode::Public);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Without commit(): the temporary file is removed and the final name is left untouched.
  ~AtomicFile();

  std::ostream& stream() { return *os_; }
  // Flushes, fsyncs, renames over the final name and fsyncs the directory. Throws hecnn::Error.
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  class Buf;
  void discard() noexcept;
  std::string path_, temp_;
  FileMode mode_;
  int fd_ = -1;
  std::unique_ptr<Buf> buf_;
  std::unique_ptr<std::ostream> os_;
};

// Writes `path` through an AtomicFile: `body` writes the contents, then it is committed.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& body,
                       FileMode mode = FileMode::Public);

// Zeroes memory in a way the compiler may not drop (explicit_bzero).
void secure_zero(void* p, std::size_t bytes) noexcept;

// A small file's bytes in memory that is zeroed when released, for reading secrets: `path` must be
// a regular file of at most max_bytes with no access for group or others (like ssh's private keys;
// the message says to chmod 600 it).
class SecretBuffer {
 public:
  SecretBuffer() = default;
  explicit SecretBuffer(std::size_t n) : bytes_(n) {}
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer() { secure_zero(bytes_.data(), bytes_.size()); }
  char* data() { return bytes_.data(); }
  const char* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }

 private:
  std::vector<char> bytes_;
};
std::unique_ptr<SecretBuffer> read_secret_file(const std::string& path, std::size_t max_bytes);

// An input stream over bytes in memory, seekable, making no copy of them.
class MemoryIstream : public std::istream {
 public:
  MemoryIstream(const char* data, std::size_t size);

 private:
  class Buf : public std::streambuf {
   public:
    Buf(const char* data, std::size_t size);

   protected:
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override;
    pos_type seekpos(pos_type pos, std::ios_base::openmode which) override;
  };
  Buf buf_;
};

}  // namespace hecnn
