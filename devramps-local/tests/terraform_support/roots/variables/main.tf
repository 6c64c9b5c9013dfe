# Variables with and without defaults.
terraform {
  backend "s3" {}
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

variable "region" {
  type = string
}

variable "size" {
  type    = number
  default = 1
}

variable "tags" {
  type = map(string)
}
