# frozen_string_literal: true

class ApplicationController < ActionController::Base
  rescue_from BloatProbe::SettingError do |error|
    render json: { error: error.message }, status: :unprocessable_entity
  end

  private

  def query_params
    @query_params ||= QueryParams.new(params)
  end
end
