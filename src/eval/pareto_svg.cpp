// src/eval/pareto_svg.cpp — a small self-contained SVG scatter plot (x linear, y log10) with the
// Pareto frontier, so that `tq eval --plot` needs no plotting dependency.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "turboquant/eval.h"

namespace tq::eval {

std::vector<size_t> pareto_front(const std::vector<PlotPoint>& pts) {
  std::vector<size_t> idx(pts.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return pts[a].x != pts[b].x ? pts[a].x < pts[b].x : pts[a].y < pts[b].y; });
  std::vector<size_t> front;
  double best = INFINITY;
  for (size_t i : idx) {
    if (pts[i].y < best) {  // strictly better error than every point with fewer (or equal) bits
      front.push_back(i);
      best = pts[i].y;
    }
  }
  return front;
}

namespace {
std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}
}  // namespace

std::string pareto_svg(const std::vector<PlotPoint>& all, const std::string& title, const std::string& xlabel,
                       const std::string& ylabel) {
  // Points with a non-positive or non-finite error cannot go on a log axis: listed in a note instead.
  std::vector<PlotPoint> pts;
  std::string skipped;
  for (const auto& p : all) {
    if (std::isfinite(p.x) && std::isfinite(p.y) && p.y > 0) pts.push_back(p);
    else skipped += (skipped.empty() ? "" : ", ") + p.label;
  }
  const double W = 720, H = 480, L = 80, R = 30, Tm = 40, Bm = 60;
  double x0 = 0, x1 = 1, y0 = -1, y1 = 0;
  if (!pts.empty()) {
    x0 = x1 = pts[0].x;
    y0 = y1 = std::log10(pts[0].y);
    for (const auto& p : pts) {
      x0 = std::min(x0, p.x);
      x1 = std::max(x1, p.x);
      y0 = std::min(y0, std::log10(p.y));
      y1 = std::max(y1, std::log10(p.y));
    }
  }
  x0 = std::floor(x0) - 0.5;
  x1 = std::ceil(x1) + 0.5;
  y0 = std::floor(y0);
  y1 = std::ceil(y1);
  if (y1 <= y0) y1 = y0 + 1;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double ly) { return Tm + (y1 - ly) / (y1 - y0) * (H - Tm - Bm); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H, W, H);
  s += fmt::format("<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", W / 2, esc(title));
  // Axes, grid and ticks: integer bits on x, decades on y.
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", L, Tm,
                   W - L - R, H - Tm - Bm);
  const double xstep = (x1 - x0) > 20 ? 4 : (x1 - x0) > 10 ? 2 : 1;
  for (double t = std::ceil(x0 / xstep) * xstep; t <= x1; t += xstep) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>", X(t), Tm, H - Bm);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", X(t), H - Bm + 16, t);
  }
  for (double e = y0; e <= y1; e += 1) {
    s += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>", L, Y(e), W - R);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1e{}</text>\n", L - 6, Y(e) + 4, int(e));
    // Narrow ranges (<= 2 decades) also get 2x and 5x ticks, so that the points can be read off.
    for (double m : {2.0, 5.0}) {
      const double le = e + std::log10(m);
      if (y1 - y0 > 2 || le >= y1) continue;
      s += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#eee\"/>", L, Y(le), W - R);
      s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#666\">{}e{}</text>\n", L - 6,
                       Y(le) + 4, int(m), int(e));
    }
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (L + W - R) / 2, H - 18, esc(xlabel));
  s += fmt::format("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">{1}</text>\n",
                   (Tm + H - Bm) / 2, esc(ylabel));
  // Frontier, then points (frontier points filled).
  const auto front = pareto_front(pts);
  std::string poly;
  for (size_t i : front) poly += fmt::format("{:.1f},{:.1f} ", X(pts[i].x), Y(std::log10(pts[i].y)));
  if (front.size() >= 2)
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#c33\" stroke-width=\"1.5\"/>\n", poly);
  // Labels: the first of a few positions around the point whose box overlaps no label placed so far
  // (boxes estimated at 6.2 px per character, 11 px high).
  struct Box { double x0, y0, x1, y1; };
  std::vector<Box> placed;
  for (size_t i = 0; i < pts.size(); ++i) {
    const double px = X(pts[i].x), py = Y(std::log10(pts[i].y));
    placed.push_back({px - 4, py - 4, px + 4, py + 4});  // the markers themselves
  }
  for (size_t i = 0; i < pts.size(); ++i) {
    const bool on = std::find(front.begin(), front.end(), i) != front.end();
    const double px = X(pts[i].x), py = Y(std::log10(pts[i].y));
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\" stroke=\"#333\"/>", px, py,
                     on ? "#c33" : "white");
    const double w = 6.2 * double(pts[i].label.size()), h = 11;
    const double cand[][2] = {{6, -5}, {6, 13}, {-6 - w, -5}, {-6 - w, 13}, {6, -17}, {-6 - w, -17}, {6, 25}, {-6 - w, 25}};
    double lx = px + 6, ly = py - 5;
    for (const auto& c : cand) {
      const Box b{px + c[0], py + c[1] - h + 2, px + c[0] + w, py + c[1] + 2};
      const bool clash = std::any_of(placed.begin(), placed.end(), [&](const Box& o) {
        return b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1;
      });
      if (!clash) { lx = px + c[0]; ly = py + c[1]; break; }
    }
    placed.push_back({lx, ly - h + 2, lx + w, ly + 2});
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", lx, ly, esc(pts[i].label));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#555\">red: Pareto frontier (no codec has both "
                   "fewer bits and less error){}</text>\n",
                   L, H - 4, skipped.empty() ? "" : "; not plotted (error 0 or undefined): " + esc(skipped));
  s += "</svg>\n";
  return s;
}

}  // namespace tq::eval
