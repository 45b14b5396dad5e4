// A/B of two Kiln libraries in one process: both dlopened, each with its own handle (2 threads),
// timed in alternating blocks of about 150 ms (the order flipping every pair), so that the
// host's drift (this 2-core VM's speed moves by up to 2x within minutes) falls on both alike.
// Prints each one's median block time and the median of the per-pair ratios B/A with its
// quartiles; with PROFILE=N also the N steps that gained most and lost most, from both
// libraries' profiles taken in the same alternation (steps matched by name).
//
//   g++ -O2 -std=c++17 bench/ab.cpp -ldl -o /tmp/ab
//   OMP_NUM_THREADS=2 /tmp/ab old/libm.so m new/libm.so m [pairs=20] [runs per block]
//
// Inputs are a fixed pseudo-random pattern in [-1, 1) (floats; other element types get the
// same bytes). The libraries may have the same name prefix: symbols are looked up per handle.
#include <dlfcn.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <algorithm>
#include <cstring>
struct Lib {
  void* h; void* m = nullptr;
  int (*run)(void*, size_t, const void* const*, const size_t*, size_t, void* const*, const size_t*);
  std::vector<std::vector<char>> in, out; std::vector<const void*> ip; std::vector<void*> op; std::vector<size_t> is, os;
  int (*setprof)(void*, int); double (*pms)(const void*, size_t); const char* (*pname)(size_t); size_t (*pcount)(); void (*preset)(void*);
  Lib(const char* path, std::string n) {
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL); if (!h) { fprintf(stderr, "%s\n", dlerror()); exit(1); }
    auto sym = [&](std::string s) { void* p = dlsym(h, (n + "_" + s).c_str()); if (!p) { fprintf(stderr, "no %s_%s\n", n.c_str(), s.c_str()); exit(1); } return p; };
    auto create = (int (*)(void**))sym("create");
    auto threads = (int (*)(void*, int))sym("set_num_threads");
    run = (decltype(run))sym("run");
    setprof = (decltype(setprof))sym("set_profiling"); pms = (decltype(pms))sym("profile_ms"); pname = (decltype(pname))sym("profile_name");
    pcount = (decltype(pcount))sym("profile_count"); preset = (decltype(preset))sym("profile_reset");
    auto ni = ((size_t (*)())sym("num_inputs"))(), no = ((size_t (*)())sym("num_outputs"))();
    auto ib = (size_t (*)(size_t))sym("input_bytes"), ob = (size_t (*)(size_t))sym("output_bytes");
    for (size_t i = 0; i < ni; i++) { in.emplace_back(ib(i)); is.push_back(ib(i)); }
    for (size_t i = 0; i < no; i++) { out.emplace_back(ob(i)); os.push_back(ob(i)); }
    for (auto& v : in) { for (size_t k = 0; k + 4 <= v.size(); k += 4) { float f = (float)((k * 2654435761u) % 1000) / 500.f - 1.f; memcpy(&v[k], &f, 4); } ip.push_back(v.data()); }
    for (auto& v : out) op.push_back(v.data());
    if (create(&m)) { fprintf(stderr, "create failed\n"); exit(1); }
    threads(m, 2);
  }
  double block(int runs) {
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < runs; r++) if (run(m, ip.size(), ip.data(), is.data(), op.size(), op.data(), os.data())) { fprintf(stderr, "run failed\n"); exit(1); }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / runs;
  }
};
int main(int argc, char** argv) {
  Lib a(argv[1], argv[2]), b(argv[3], argv[4]);
  int pairs = argc > 5 ? atoi(argv[5]) : 20;
  double t = a.block(3); int runs = std::max(1, (int)(150 / t));  // ~150 ms blocks
  if (argc > 6) runs = atoi(argv[6]);
  b.block(3);
  std::vector<double> ra, rb, q;
  for (int p = 0; p < pairs; p++) {
    double x, y;
    if (p % 2) { y = b.block(runs); x = a.block(runs); } else { x = a.block(runs); y = b.block(runs); }
    ra.push_back(x); rb.push_back(y); q.push_back(y / x);
  }
  if (getenv("PROFILE")) {
    a.setprof(a.m, 1); b.setprof(b.m, 1); a.preset(a.m); b.preset(b.m);
    for (int p = 0; p < pairs; p++) { a.block(runs); b.block(runs); }
    double n = pairs * runs;
    struct R { double d, x, y; std::string s; };
    std::vector<R> rows;
    for (size_t i = 0; i < a.pcount(); i++) {
      std::string s = a.pname(i);
      for (size_t j = 0; j < b.pcount(); j++) if (s == b.pname(j)) { rows.push_back({(b.pms(b.m, j) - a.pms(a.m, i)) / n, a.pms(a.m, i) / n, b.pms(b.m, j) / n, s}); break; }
    }
    std::sort(rows.begin(), rows.end(), [](const R& l, const R& r) { return l.d < r.d; });
    int lim = atoi(getenv("PROFILE"));
    for (size_t i = 0; i < rows.size(); i++) if ((int)i < lim || (int)(rows.size() - i) <= lim) printf("%8.4f %8.4f %5.2f %s\n", rows[i].x, rows[i].y, rows[i].y / rows[i].x, rows[i].s.c_str());
  }
  auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  printf("A %.3f ms  B %.3f ms  B/A %.3f (pairs %d, runs %d; ratio p25 %.3f p75 %.3f)\n", med(ra), med(rb), med(q), pairs, runs,
         [&]{ auto v = q; std::sort(v.begin(), v.end()); return v[v.size()/4]; }(), [&]{ auto v = q; std::sort(v.begin(), v.end()); return v[3*v.size()/4]; }());
}
