# frozen_string_literal: true

module BloatProbe
  VERSION = "0.1.0"
end
