package codec_test

import (
	"fmt"

	"github.com/chronicle-go/chronicle/codec"
)

type AccountOpened struct {
	Owner string `json:"owner"`
}

func Example() {
	reg := codec.NewRegistry()
	if err := codec.Register[AccountOpened](reg, "AccountOpened", 1); err != nil {
		fmt.Println(err)
		return
	}
	name, version, data, _ := reg.Encode(AccountOpened{Owner: "ada"})
	fmt.Println(name, version, string(data))

	v, _ := reg.Decode(name, version, data)
	fmt.Printf("%T %+v\n", v, v)
	// Output:
	// AccountOpened 1 {"owner":"ada"}
	// codec_test.AccountOpened {Owner:ada}
}
