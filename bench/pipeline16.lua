-- wrk script: 16 requests per round trip (pipelined keep-alive), so that the server, not the
-- load generator, is the bottleneck.
init = function(args)
  local batch = {}
  for i = 1, 16 do
    batch[i] = wrk.format(nil, "/hello")
  end
  pipelined = table.concat(batch)
end

request = function()
  return pipelined
end
