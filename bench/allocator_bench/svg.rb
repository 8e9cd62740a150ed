# frozen_string_literal: true

require "erb"
require "bloat_probe/format"
require_relative "../../rails-app/lib/ticks"

module AllocatorBench
  # What the charts share: round axis ticks, escaped text, a configuration's marker, and
  # the box a label takes, estimated from its font size and length (the charts place
  # their labels by it, and the tests check that no two overlap).
  module Svg
    FONT_SIZE = 12
    # The width of an average character of a sans-serif font, in ems: generous, so that an
    # estimate holds the real glyphs.
    CHAR_WIDTH = 0.62

    Box = Struct.new(:left, :top, :right, :bottom)

    class Box
      def overlaps?(other)
        left < other.right && other.left < right && top < other.bottom && other.top < bottom
      end

      def inside?(outer)
        left >= outer.left && right <= outer.right && top >= outer.top && bottom <= outer.bottom
      end
    end

    module_function

    def open_tag(width, height)
      %(<svg xmlns="http://www.w3.org/2000/svg" width="#{width}" height="#{height}" ) +
        %(viewBox="0 0 #{width} #{height}" font-family="sans-serif" font-size="#{FONT_SIZE}">)
    end

    def esc(text)
      ERB::Util.html_escape(text)
    end

    # Round ticks from 0 past max (the gem's, which the dashboard's chart uses too).
    def ticks(max, count: 5)
      Ticks.up_to(max, count: count)
    end

    # Where a label drawn with text-anchor start at (x, y) lies: its baseline is y.
    def text_box(x, y, text, size: FONT_SIZE)
      Box.new(x, y - size, x + (text.to_s.length * size * CHAR_WIDTH), y + (size * 0.3))
    end

    # The configuration's marker at (x, y), in its colour.
    def marker(look, x, y, size: 5, title: nil)
      inner = title ? "<title>#{esc(title)}</title>" : ""
      paint = %(fill="#{look.colour}" stroke="white" stroke-width="1")
      shape = case look.marker
              when :square then %(<rect x="#{x - size}" y="#{y - size}" width="#{2 * size}" height="#{2 * size}" )
              when :diamond then polygon([[x, y - size - 1], [x + size + 1, y], [x, y + size + 1], [x - size - 1, y]])
              when :triangle then polygon([[x, y - size - 1], [x + size + 1, y + size], [x - size - 1, y + size]])
              when :triangle_down then polygon([[x, y + size + 1], [x + size + 1, y - size], [x - size - 1, y - size]])
              when :cross then return cross(look, x, y, size, inner)
              else %(<circle cx="#{x}" cy="#{y}" r="#{size}" )
              end
      %(#{shape}#{paint} class="marker">#{inner}</#{shape[/<(\w+)/, 1]}>)
    end

    def polygon(points)
      %(<polygon points="#{points.map { |px, py| "#{px.round(1)},#{py.round(1)}" }.join(" ")}" )
    end

    def cross(look, x, y, size, inner)
      %(<path class="marker" d="M#{x - size},#{y - size}L#{x + size},#{y + size}M#{x - size},#{y + size}) +
        %(L#{x + size},#{y - size}" stroke="#{look.colour}" stroke-width="2.5">#{inner}</path>)
    end

    # A stroke in the configuration's colour and dash.
    def stroke(look, width: 2)
      dash = look.dash.empty? ? "" : %( stroke-dasharray="#{look.dash}")
      %(stroke="#{look.colour}" stroke-width="#{width}"#{dash})
    end
  end
end
