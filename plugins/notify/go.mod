module github.com/berthgw/berth/plugins/notify

go 1.25.0

replace github.com/berthgw/berth/sdk => ../../sdk
