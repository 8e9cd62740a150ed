# frozen_string_literal: true

# Rack parses the query string lazily, and Rails 6.1 first does it inside its own exception
# handling: a query Rack refuses (nested past its depth limit, say `?a[b][c]…` 200 deep)
# then ends in "Error during failsafe response" and a 500 on every route. Parsed here
# first, it gets the 400 any malformed request gets. Rack keeps what it parsed in the
# request's env, so Rails does not parse it again.
class MalformedQueryGuard
  REFUSED = [
    Rack::QueryParser::QueryLimitError, Rack::QueryParser::InvalidParameterError,
    Rack::QueryParser::ParameterTypeError
  ].freeze

  def initialize(app)
    @app = app
  end

  def call(env)
    Rack::Request.new(env).GET
  rescue *REFUSED => e
    [400, { "Content-Type" => "text/plain" },
     ["Bad request: the query string was refused (#{e.class.name.demodulize})\n"]]
  else
    @app.call(env)
  end
end
