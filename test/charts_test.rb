# frozen_string_literal: true

require "test_helper"
require "rexml/document"
require_relative "../bench/allocator_bench/outputs"

# The bench's pictures, drawn again from every published run under docs/ (up to 11
# configurations × 3 rounds), read back as a person would need them: each configuration
# has a look of its own, labels do not cover each other or a marker, ticks are round, and
# the HTML report holds everything on one self-contained page.
class ChartsTest < Minitest::Test
  PUBLISHED = Dir[File.expand_path("../docs/bench-*.json", __dir__)].sort

  def setup
    @dir = Dir.mktmpdir("bloat_probe-charts")
  end

  def teardown
    FileUtils.rm_rf(@dir)
  end

  def drawn(json)
    copy = File.join(@dir, File.basename(json))
    FileUtils.cp(json, copy)
    files = AllocatorBench::Outputs.redraw(copy)
    report = AllocatorBench::Report.from_h(JSON.parse(File.read(copy), symbolize_names: true))
    [report, files.to_h { |kind, path| [kind, kind == :json ? path : File.read(path)] }]
  end

  def test_published_runs_are_there_to_draw
    assert_operator PUBLISHED.size, :>=, 5
  end

  def test_every_configuration_has_a_look_of_its_own_in_the_timeline
    PUBLISHED.each do |json|
      report, files = drawn(json)
      svg = REXML::Document.new(files[:timeline])
      medians = REXML::XPath.match(svg, "//polyline[@class='median']")
      names = report.rows.select(&:measured?).map(&:config)
      assert_equal names, medians.map { |line| line.attributes["data-config"] }, "#{json}: one bold line each"
      looks = medians.map { |line| [line.attributes["stroke"], line.attributes["stroke-dasharray"].to_s] }
      assert_equal looks.size, looks.uniq.size, "#{json}: two configurations share colour and dash: #{looks}"
      legend = REXML::XPath.match(svg, "//g[@class='legend-entry']").map { |entry| entry.attributes["data-config"] }
      assert_equal names, legend, "#{json}: the legend in the table's order"
      REXML::XPath.match(svg, "//polyline[@class='round']").each do |line|
        bold = medians.find { |median| median.attributes["data-config"] == line.attributes["data-config"] }
        assert_equal bold.attributes["stroke"], line.attributes["stroke"], "#{json}: a round in its median's look"
      end
      assert_round_ticks(svg, json)
    end
  end

  def test_tradeoff_labels_cover_no_label_and_no_marker
    PUBLISHED.each do |json|
      report, files = drawn(json)
      svg = REXML::Document.new(files[:tradeoff])
      panels = REXML::XPath.match(svg, "//g[@class='panel']")
      assert_equal 2, panels.size
      panels.each do |panel|
        labels = REXML::XPath.match(panel, ".//text[@class='label']").map do |text|
          AllocatorBench::Svg.text_box(text.attributes["x"].to_f, text.attributes["y"].to_f, text.text)
        end
        markers = REXML::XPath.match(panel, ".//*[@class='marker']").map { |marker| marker_box(marker) }
        assert_equal report.rows.count(&:measured?), labels.size, json
        assert_equal labels.size, markers.size, json
        labels.combination(2).each { |a, b| refute a.overlaps?(b), "#{json}: labels #{a} and #{b} overlap" }
        labels.product(markers).each { |label, marker| refute label.overlaps?(marker), "#{json}: #{label} on a marker" }
        colours = REXML::XPath.match(panel, ".//text[@class='label']").map { |text| text.attributes["fill"] }
        assert_equal colours.size, colours.uniq.size, "#{json}: each label in its configuration's colour"
      end
      assert_round_ticks(svg, json)
    end
  end

  def test_the_html_report_is_one_self_contained_page
    PUBLISHED.each do |json|
      report, files = drawn(json)
      html = files[:html]
      refute_match(/<script|<link|<img|src=|url\(/i, html, "#{json}: nothing fetched from elsewhere")
      assert_equal 2, html.scan("<svg").size, "#{json}: both charts inline"
      rows = html[%r{<table id="results">.*?</table>}m].scan(/<tr data-config="([^"]+)"/).flatten
      assert_equal report.rows.map(&:config), rows, json
      report.findings.each { |finding| assert_includes html, ERB::Util.html_escape(finding) }
      assert_match(%r{<code id="rerun">[^<]*bin/rake bench}, html)
      assert_includes html, %(href="#{File.basename(json)}")
    end
  end

  private

  # Ticks start at 0 and rise by one step of 1, 2 or 5 × 10^n.
  def assert_round_ticks(svg, json)
    %w[x y].each do |axis|
      scopes = REXML::XPath.match(svg, "//g[@class='panel'] | /svg").select do |scope|
        REXML::XPath.first(scope, "./text[@class='tick #{axis}']")
      end
      refute_empty scopes, "#{json}: #{axis} ticks drawn"
      scopes.each do |scope|
        values = REXML::XPath.match(scope, "./text[@class='tick #{axis}']").map { |tick| Float(tick.text) }
        steps = values.each_cons(2).map { |a, b| (b - a).round(9) }.uniq
        assert_equal 0, values.first, "#{json}: #{axis} ticks from 0"
        assert_equal 1, steps.size, "#{json}: #{axis} ticks evenly spaced: #{values}"
        mantissa = steps.first / (10**Math.log10(steps.first).floor)
        assert_includes [1, 2, 5], mantissa.round(6), "#{json}: #{axis} step #{steps.first} is 1, 2 or 5 × 10^n"
      end
    end
  end

  # The box a marker covers, from its shape's attributes.
  def marker_box(marker)
    a = marker.attributes
    case marker.name
    when "circle" then box_around(a["cx"].to_f, a["cy"].to_f, a["r"].to_f)
    when "rect" then AllocatorBench::Svg::Box.new(a["x"].to_f, a["y"].to_f, a["x"].to_f + a["width"].to_f,
                                                  a["y"].to_f + a["height"].to_f)
    else
      coordinates = a[marker.name == "path" ? "d" : "points"].scan(/-?\d+(?:\.\d+)?/).map(&:to_f).each_slice(2).to_a
      xs, ys = coordinates.transpose
      AllocatorBench::Svg::Box.new(xs.min, ys.min, xs.max, ys.max)
    end
  end

  def box_around(x, y, radius)
    AllocatorBench::Svg::Box.new(x - radius, y - radius, x + radius, y + radius)
  end
end
