#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "common/error.h"

namespace hecnn {

namespace {

std::string sys_error() { return std::strerror(errno); }

// Directory and file name of a path ("." when it has no directory part).
std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

void secure_zero(void* p, std::size_t bytes) noexcept {
  if (p && bytes) explicit_bzero(p, bytes);
}

// A write buffer over a file descriptor; zeroed when released.
class AtomicFile::Buf : public std::streambuf {
 public:
  explicit Buf(int fd) : fd_(fd), buf_(1 << 16) { setp(buf_.data(), buf_.data() + buf_.size()); }
  ~Buf() override { secure_zero(buf_.data(), buf_.size()); }
  bool failed() const { return failed_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const char* p = pbase();
    std::size_t left = static_cast<std::size_t>(pptr() - pbase());
    while (left > 0 && !failed_) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        failed_ = true;
        errno_ = errno;
        break;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    secure_zero(pbase(), static_cast<std::size_t>(pptr() - pbase()));
    setp(buf_.data(), buf_.data() + buf_.size());
    return !failed_;
  }

 public:
  int error() const { return errno_; }

 private:
  int fd_;
  std::vector<char> buf_;
  bool failed_ = false;
  int errno_ = 0;
};

AtomicFile::AtomicFile(std::string path, FileMode mode) : path_(std::move(path)), mode_(mode) {
  if (path_.empty()) throw Error("an empty output file name");
  const auto [dir, name] = split_path(path_);
  if (name.empty() || name == "." || name == "..") throw Error("'" + path_ + "' is not a file name");
  std::random_device rd;
  static const char* digits = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    std::string suffix;
    for (int i = 0; i < 8; ++i) suffix += digits[rd() % 36];
    const std::string temp_name = "." + name + ".tmp-" + suffix;
    temp_ = path_.find('/') == std::string::npos ? temp_name : (dir == "/" ? "" : dir) + "/" + temp_name;
    const mode_t perms = mode_ == FileMode::Secret ? 0600 : 0666;
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perms);
    if (fd_ < 0 && errno != EEXIST) {
      throw Error("cannot write '" + path_ + "': cannot create a file in " + dir + " (" + sys_error() + ")");
    }
  }
  if (fd_ < 0) throw Error("cannot write '" + path_ + "': no free temporary name in " + dir);
  if (mode_ == FileMode::Secret && ::fchmod(fd_, 0600) != 0) {  // exactly 0600 whatever the umask
    discard();
    throw Error("cannot write '" + path_ + "': cannot set its mode (" + sys_error() + ")");
  }
  buf_ = std::make_unique<Buf>(fd_);
  os_ = std::make_unique<std::ostream>(buf_.get());
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  os_.reset();
  buf_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_.c_str());
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw Error("'" + path_ + "' was already written or discarded");
  os_->flush();
  if (!*os_ || buf_->failed()) {
    const int e = buf_->error();
    discard();
    throw Error("writing '" + path_ + "' failed (" + (e ? std::strerror(e) : "stream error") + ")");
  }
  if (::fsync(fd_) != 0) {
    const std::string e = sys_error();
    discard();
    throw Error("writing '" + path_ + "' failed: fsync: " + e);
  }
  os_.reset();
  buf_.reset();
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    const std::string e = sys_error();
    ::unlink(temp_.c_str());
    throw Error("writing '" + path_ + "' failed: close: " + e);
  }
  // rename() replaces the directory entry: a symbolic link at the final name is replaced, not followed.
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const std::string e = sys_error();
    ::unlink(temp_.c_str());
    throw Error("cannot write '" + path_ + "': " + e);
  }
  const int dfd = ::open(split_path(path_).first.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the new name durable too; some file systems refuse, which is harmless
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& body, FileMode mode) {
  AtomicFile f(path, mode);
  body(f.stream());
  f.commit();
}

std::unique_ptr<SecretBuffer> read_secret_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "' for reading (" + sys_error() + ")");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error("cannot read '" + path + "' (" + sys_error() + ")");
  if (!S_ISREG(st.st_mode)) throw Error("'" + path + "' is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    throw Error("'" + path + "' holds a secret key but is accessible by other users (mode " + mode +
                "); restrict it with chmod 600 '" + path + "'");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    throw Error("'" + path + "' is larger (" + std::to_string(st.st_size) + " bytes) than a secret key of these parameters");
  }
  auto buf = std::make_unique<SecretBuffer>(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < buf->size()) {
    const ssize_t n = ::read(fd, buf->data() + got, buf->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot read '" + path + "' (" + sys_error() + ")");
    if (n == 0) throw Error("'" + path + "' shrank while it was read");
    got += static_cast<std::size_t>(n);
  }
  return buf;
}

MemoryIstream::Buf::Buf(const char* data, std::size_t size) {
  char* p = const_cast<char*>(data);  // read only: no put area
  setg(p, p, p + size);
}

std::streambuf::pos_type MemoryIstream::Buf::seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) {
  if (!(which & std::ios_base::in)) return pos_type(off_type(-1));
  off_type base = 0;
  if (dir == std::ios_base::cur) base = gptr() - eback();
  else if (dir == std::ios_base::end) base = egptr() - eback();
  const off_type target = base + off;
  if (target < 0 || target > egptr() - eback()) return pos_type(off_type(-1));
  setg(eback(), eback() + target, egptr());
  return pos_type(target);
}

std::streambuf::pos_type MemoryIstream::Buf::seekpos(pos_type pos, std::ios_base::openmode which) {
  return seekoff(off_type(pos), std::ios_base::beg, which);
}

MemoryIstream::MemoryIstream(const char* data, std::size_t size) : std::istream(nullptr), buf_(data, size) { rdbuf(&buf_); }

void check_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ELOOP) throw Error("cannot open " + what + " " + path + ": a loop of symbolic links");
    throw Error("cannot open " + what + " " + path + " (" + std::strerror(err) + ")");
  }
  if (S_ISREG(st.st_mode)) return;
  const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "of an unknown kind";
  throw Error(what + " " + path + " is " + kind + ", not a regular file");
}

std::uint64_t regular_file_size(const std::string& path, const std::string& what) {
  check_regular_file(path, what);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot open " + what + " " + path + " (" + std::strerror(errno) + ")");
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace hecnn
