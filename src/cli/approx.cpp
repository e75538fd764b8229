// `hecnn approx`: fits a polynomial to an activation function, prints its coefficients in the
// power and Chebyshev bases with the fit errors and the encrypted-evaluation cost, and optionally
// plots function, polynomial and error (gnuplot) over a span wider than the fitted interval.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "approx/fit.h"
#include "approx/poly_eval.h"
#include "common/error.h"
#include "cli/commands.h"
#include "cli/outputs.h"
#include "common/files.h"

extern char** environ;

namespace hecnn::cli {

namespace {

struct ApproxOptions {
  std::string fn;
  int degree = 4;
  double range = 4;
  std::string method = "lsq";
  int points = 1000;
  double sigma = 1.0;
  bool json = false;
  bool list = false;
  std::string plot;
  double plot_span = 0;  // 0: 1.5 r
};

bool has_control_char(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// A private temporary directory (mode 0700), removed with everything in it when destroyed.
class TempDir {
 public:
  TempDir() {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/hecnn-plot-XXXXXX";
    if (!mkdtemp(path_.data())) throw Error("cannot create a temporary directory " + path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `gnuplot script`; throws with a clear message when gnuplot is missing or fails.
void run_gnuplot(const std::string& script_path) {
  const char* argv[] = {"gnuplot", script_path.c_str(), nullptr};
  pid_t pid = 0;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  const int rc = posix_spawnp(&pid, "gnuplot", &actions, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw Error("--plot needs gnuplot, which was not found on PATH (Debian: apt-get install gnuplot-nox; "
                "scripts/setup.sh installs it)");
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error("gnuplot failed to draw the plot (see its message above)");
  }
}

// A gnuplot single-quoted string: '' stands for a quote; a line break would end the command, so
// control characters are refused (the paths quoted are our own temporary files).
std::string gp_quote(const std::string& s) {
  if (has_control_char(s)) throw Error("cannot pass a name with a control character to gnuplot: " + s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else out += c;
  }
  return out + "'";
}

void plot_fit(const approx::Fit& fit, const approx::ActivationFunction& f, const std::string& file, double span) {
  const double r = fit.options.range;
  if (span == 0) span = 1.5 * r;
  if (!(span > 0) || !std::isfinite(span)) throw Error("--plot-span must be a positive number");
  // The user's file name never reaches gnuplot: it draws into a private temporary directory, and
  // the image is then written to `file` atomically.
  const TempDir tmp;
  const std::string data = tmp / "data.txt", script = tmp / "plot.gp", image = tmp / "plot.png";
  double fmin = 1e300, fmax = -1e300;
  {
    std::ofstream out(data);
    out.precision(12);
    constexpr int m = 2000;
    for (int i = 0; i <= m; ++i) {
      const double x = -span + 2 * span * i / m;
      const double fx = f.eval(x), px = fit.power(x);
      fmin = std::min(fmin, fx);
      fmax = std::max(fmax, fx);
      out << x << ' ' << fx << ' ' << px << ' ' << px - fx << '\n';
    }
    if (!out) throw Error("cannot write the plot data to " + data);
  }
  const double pad = std::max(0.25 * (fmax - fmin), 1e-3);
  const double emax = std::max(fit.errors.max_abs, 1e-15);
  std::ostringstream ts;
  ts << fit.function << ": degree " << fit.options.degree << " " << approx::to_string(fit.options.method)
     << " fit on [-" << r << ", " << r << "], max error " << std::setprecision(3) << fit.errors.max_abs;
  const std::string title = ts.str();
  {
    std::ofstream gp(script);
    gp.precision(12);
    gp << "set terminal pngcairo size 1000,800 enhanced font ',10'\n"
       << "set output " << gp_quote(image) << "\n"
       << "set multiplot layout 2,1 title " << gp_quote(title) << "\n"
       << "set grid\nset xrange [" << -span << ":" << span << "]\n"
       << "set object 1 rect from " << -r << ", graph 0 to " << r << ", graph 1 fc rgb '#eef2ff' fs solid behind\n"
       << "set key top left\nset ylabel 'value'\n"
       << "set yrange [" << fmin - pad << ":" << fmax + pad << "]\n"
       << "plot " << gp_quote(data) << " using 1:2 with lines lw 2 lc rgb '#1f77b4' title " << gp_quote(f.name + "(x)")
       << ", '' using 1:3 with lines lw 2 dt 2 lc rgb '#d62728' title 'p(x)'\n"
       << "set ylabel 'p(x) - f(x)'\nset xlabel 'x (shaded: fitted interval)'\n"
       << "set yrange [" << -4 * emax << ":" << 4 * emax << "]\n"
       << "plot " << gp_quote(data) << " using 1:4 with lines lw 2 lc rgb '#2ca02c' title 'error'\n"
       << "unset multiplot\n";
    if (!gp) throw Error("cannot write the gnuplot script to " + script);
  }
  run_gnuplot(script);
  std::ifstream in(image, std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (png.size() < 8 || png.compare(1, 3, "PNG") != 0) throw Error("gnuplot did not write a PNG image");
  write_file_atomic(file, [&](std::ostream& out) { out.write(png.data(), static_cast<std::streamsize>(png.size())); });
}

void print_text(const approx::Fit& fit, const approx::ActivationFunction& f) {
  const auto& o = fit.options;
  std::printf("%s(x) = %s\n", f.name.c_str(), f.formula.c_str());
  std::printf("fit: degree %d on [-%g, %g], method %s", o.degree, o.range, o.range, approx::to_string(o.method).c_str());
  if (o.method == approx::FitMethod::LeastSquares) std::printf(" (%d evenly spaced points)", o.points);
  if (o.method == approx::FitMethod::LeastSquaresNormal) std::printf(" (weight: normal density, sigma %g)", o.sigma);
  if (o.method == approx::FitMethod::Minimax) std::printf(" (%d Remez iterations)", fit.remez_iterations);
  std::printf("\n\npower basis: p(x) = %s\n", fit.power.to_string(7).c_str());
  for (std::size_t i = 0; i < fit.power.coeffs().size(); ++i) std::printf("  a%-2zu = %+.12e\n", i, fit.power.coeffs()[i]);
  std::printf("\nchebyshev basis: p(x) = sum c_i T_i(x / %g)\n", o.range);
  for (std::size_t i = 0; i < fit.chebyshev.coeffs().size(); ++i) {
    std::printf("  c%-2zu = %+.12e\n", i, fit.chebyshev.coeffs()[i]);
  }
  const auto& e = fit.errors;
  std::printf("\nerrors on [-%g, %g]:\n", o.range, o.range);
  std::printf("  max |f - p|          %.6e  (at x = %.4f)\n", e.max_abs, e.argmax);
  std::printf("  rms                  %.6e\n", e.rms);
  std::printf("  E[(f - p)^2], N(0,1) %.6e\n", e.normal_mse);
  const int d = fit.power.degree();
  if (d >= 1) {
    const auto plan = approx::plan_polynomial(fit.power);
    const auto stats = approx::count_operations(plan);
    std::printf("\nencrypted evaluation: %d levels (%d in monic form, leading coefficient %.6g folded into the next "
                "layer); %d ciphertext products\n",
                plan.depth, approx::minimal_depth(d, true), fit.power.leading(), stats.products);
  }
}

void print_json(const approx::Fit& fit) {
  const auto& o = fit.options;
  nlohmann::json j;
  j["function"] = fit.function;
  j["method"] = approx::to_string(o.method);
  j["degree"] = o.degree;
  j["range"] = o.range;
  if (o.method == approx::FitMethod::LeastSquares) j["points"] = o.points;
  if (o.method == approx::FitMethod::LeastSquaresNormal) j["sigma"] = o.sigma;
  if (o.method == approx::FitMethod::Minimax) j["remez_iterations"] = fit.remez_iterations;
  j["power"] = fit.power.coeffs();
  j["chebyshev"] = fit.chebyshev.coeffs();
  j["errors"] = {{"max_abs", fit.errors.max_abs},
                 {"argmax", fit.errors.argmax},
                 {"rms", fit.errors.rms},
                 {"normal_mse", fit.errors.normal_mse}};
  const int d = fit.power.degree();
  j["depth"] = approx::minimal_depth(d, false);
  j["monic_depth"] = approx::minimal_depth(d, true);
  std::cout << j.dump(2) << "\n";
}

void run_approx(const ApproxOptions& o) {
  if (o.list) {
    for (const auto& f : approx::activation_functions()) std::printf("%-9s %s\n", f.name.c_str(), f.formula.c_str());
    return;
  }
  if (o.fn.empty()) throw Error("approx: --fn is required (one of: " + approx::activation_names() + ")");
  if (!o.plot.empty()) {
    if (has_control_char(o.plot)) throw Error("--plot: the file name contains a control character (a line break?); refusing it");
    check_output("--plot", o.plot, {});
  }
  const auto& f = approx::find_activation(o.fn);
  approx::FitOptions fo;
  fo.method = approx::parse_fit_method(o.method);
  fo.degree = o.degree;
  fo.range = o.range;
  fo.points = o.points;
  fo.sigma = o.sigma;
  const approx::Fit fit = approx::fit(f, fo);
  if (o.json) {
    print_json(fit);
  } else {
    print_text(fit, f);
  }
  if (!o.plot.empty()) {
    plot_fit(fit, f, o.plot, o.plot_span);  // --plot was checked before fitting
    std::fprintf(o.json ? stderr : stdout, "%splot written to %s\n", o.json ? "" : "\n", o.plot.c_str());
  }
}

}  // namespace

void register_approx(CLI::App& app) {
  auto opts = std::make_shared<ApproxOptions>();
  CLI::App* cmd = app.add_subcommand("approx", "Fit a polynomial to an activation function");
  cmd->add_option("--fn", opts->fn, "Function: " + approx::activation_names());
  cmd->add_option("--degree,-d", opts->degree, "Polynomial degree")->capture_default_str();
  cmd->add_option("--range,-r", opts->range, "Fit on [-r, r]")->capture_default_str();
  cmd->add_option("--method,-m", opts->method, "lsq | lsq-continuous | lsq-normal | chebyshev | minimax")
      ->capture_default_str();
  cmd->add_option("--points", opts->points, "lsq: evenly spaced points on [-r, r], endpoints included")
      ->capture_default_str();
  cmd->add_option("--sigma", opts->sigma, "lsq-normal: standard deviation of the normal weight")->capture_default_str();
  cmd->add_flag("--json", opts->json, "Print the result as JSON");
  cmd->add_option("--plot", opts->plot, "Draw function, polynomial and error to this PNG file (needs gnuplot)");
  cmd->add_option("--plot-span", opts->plot_span, "Half-width of the plotted span (default 1.5 r)");
  cmd->add_flag("--list", opts->list, "List the known functions");
  cmd->callback([opts] { run_approx(*opts); });
}

}  // namespace hecnn::cli
