package clickhouse

import "testing"

func TestInPartition(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    Partition
		want string
	}{
		{"parts named by the id: read only them", Partition{ID: "202401", Parts: []string{"202401_1_5_1", "202401_6_6_0"}},
			"_partition_id = '202401' AND startsWith(_part, '202401_')"},
		{"old syntax, parts named by dates", Partition{ID: "202401", Parts: []string{"20240105_20240131_1_1_0"}}, "_partition_id = '202401'"},
		{"one part not named by the id", Partition{ID: "202401", Parts: []string{"202401_1_1_0", "20240105_20240105_2_2_0"}}, "_partition_id = '202401'"},
		{"no parts listed", Partition{ID: "all"}, "_partition_id = 'all'"},
		{"quotes stay quoted", Partition{ID: "a'b", Parts: []string{"a'b_1_1_0"}}, `_partition_id = 'a\'b' AND startsWith(_part, 'a\'b_')`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := InPartition(tt.p); got != tt.want {
				t.Errorf("InPartition(%+v) = %s, want %s", tt.p, got, tt.want)
			}
		})
	}
}
